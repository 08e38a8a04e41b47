//! The last steps of the init before it becomes the container's process:
//! limits, user and groups, working directory, and execve.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimit, Process};

use crate::error::Context;
use crate::{Error, Result};

/// PATH used to find the program when `process.env` sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The resource number of an rlimit name such as `RLIMIT_NOFILE`.
fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// Checks the rlimit names of the process before anything is created.
pub fn check_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for rlimit in rlimits {
        let name = rlimit.typ().to_string();
        if rlimit_resource(&name).is_none() {
            return Err(Error::Spec(format!("process.rlimits: unknown type {name}")));
        }
        if rlimit.soft() > rlimit.hard() {
            return Err(Error::Spec(format!(
                "process.rlimits: {name} soft limit {} is above its hard limit {}",
                rlimit.soft(),
                rlimit.hard()
            )));
        }
    }
    Ok(())
}

/// Applies the rlimits of the process.
pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for rlimit in rlimits {
        let name = rlimit.typ().to_string();
        let resource = rlimit_resource(&name)
            .ok_or_else(|| Error::Spec(format!("process.rlimits: unknown type {name}")))?;
        let limit = libc::rlimit {
            rlim_cur: rlimit.soft(),
            rlim_max: rlimit.hard(),
        };
        // SAFETY: setrlimit reads the struct behind the pointer, a live local.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(Error::io(
                format!("set {name} to {}:{}", rlimit.soft(), rlimit.hard()),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// Switches to the process's user and groups, keeping the capabilities
/// that are set afterwards.
pub fn set_user(process: &Process) -> Result<()> {
    let user = process.user();
    let uid = Uid::from_raw(user.uid());
    let gid = Gid::from_raw(user.gid());
    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::sys::prctl::set_keepcaps(true).context(|| "set keep-caps".into())?;
    nix::unistd::setgroups(&groups).context(|| format!("setgroups {groups:?}"))?;
    nix::unistd::setresgid(gid, gid, gid).context(|| format!("setgid {gid}"))?;
    nix::unistd::setresuid(uid, uid, uid).context(|| format!("setuid {uid}"))?;
    nix::sys::prctl::set_keepcaps(false).context(|| "clear keep-caps".into())?;
    if let Some(umask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    }
    Ok(())
}

/// The environment of the process, with HOME added from the container's
/// `/etc/passwd` when the spec sets none, as runc does.
pub fn environment(process: &Process) -> Vec<String> {
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = home_of(process.user().uid()).unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 6 && fields[2].parse() == Ok(uid)).then(|| fields[5].to_string())
    })
}

/// Finds the program of `args[0]`: a path as it is, a bare name through the
/// PATH of `env`. The message wording is runc's, which podman maps to exit
/// status 127.
pub fn find_program(program: &str, env: &[String]) -> Result<PathBuf> {
    if program.contains('/') {
        return check_executable(Path::new(program)).map(|()| PathBuf::from(program));
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(program);
        if check_executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(Error::Message(format!(
        "exec: \"{program}\": executable file not found in $PATH"
    )))
}

fn check_executable(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Message(format!("exec: \"{}\": {}", path.display(), plain_io(&e))))?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::Message(format!(
            "exec: \"{}\": permission denied",
            path.display()
        )));
    }
    Ok(())
}

fn plain_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

/// Replaces the process with the container's program.
pub fn execve(path: &Path, args: &[String], env: &[String]) -> Error {
    let c = |s: &[u8]| CString::new(s).unwrap_or_default();
    let path_c = c(path.as_os_str().as_bytes());
    let args: Vec<CString> = args.iter().map(|a| c(a.as_bytes())).collect();
    let env: Vec<CString> = env.iter().map(|e| c(e.as_bytes())).collect();
    match nix::unistd::execve(&path_c, &args, &env) {
        Err(e) => Error::sys(format!("exec {}", path.display()), e),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_program_on_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        let found = find_program("sh", &env).unwrap();
        assert!(found.ends_with("sh"), "{}", found.display());
    }

    #[test]
    fn missing_program_says_not_found() {
        let env = vec!["PATH=/nonexistent".to_string()];
        let message = find_program("no-such-tool", &env).unwrap_err().to_string();
        assert_eq!(
            message,
            "exec: \"no-such-tool\": executable file not found in $PATH"
        );
    }

    #[test]
    fn directory_is_not_executable() {
        let message = find_program("/tmp", &[]).unwrap_err().to_string();
        assert!(message.contains("permission denied"), "{message}");
    }
}
