//! The last steps of the init before it becomes the container's process:
//! limits, user and groups, working directory, and execve.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxPersonality, PosixRlimit, Process};

use super::{attributes, notify};

use crate::capabilities::Sets;
use crate::error::Context;
use crate::seccomp::Filter;
use crate::sync::Channel;
use crate::{Error, Result};

/// PATH used to find the program when `process.env` sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Returns the resource number of an rlimit name such as `RLIMIT_NOFILE`.
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
            let error = std::io::Error::last_os_error();
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the live local.
            let known = unsafe { libc::getrlimit(resource, &mut current) } == 0;
            if error.raw_os_error() == Some(libc::EPERM)
                && known
                && rlimit.hard() > current.rlim_max
            {
                return Err(Error::Spec(format!(
                    "process.rlimits: {name} hard limit {} is above the caller's hard limit {}: lower it in config.json or raise the caller's",
                    rlimit.hard(),
                    current.rlim_max
                )));
            }
            return Err(Error::io(
                format!("set {name} to {}:{}", rlimit.soft(), rlimit.hard()),
                error,
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
    if process.terminal().unwrap_or(false) {
        give_terminal_to(uid)?;
    }
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

/// Makes `uid` the owner of the terminal on the process's stdio, as runc
/// does, so that a process that is not root can use its own tty. The group
/// stays the devpts one. It is called only for the container's own pty:
/// stdio inherited from the caller may be a terminal or file of the host.
fn give_terminal_to(uid: Uid) -> Result<()> {
    for fd in 0..3 {
        // SAFETY: fds 0 to 2 are only borrowed for the duration of the calls.
        let stdio = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if !nix::unistd::isatty(stdio).unwrap_or(false) {
            continue;
        }
        nix::unistd::fchown(stdio, Some(uid), None)
            .context(|| format!("give the terminal on fd {fd} to uid {uid}"))?;
    }
    Ok(())
}

/// Returns the environment of the process, with HOME added from the container's
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

/// A process whose credentials and limits are applied, ready to exec.
pub struct Prepared<'a> {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<String>,
    /// The filter to install last, with no_new_privs set. A filter with a
    /// notify listener is never late: `prepare` installs it.
    late_seccomp: Option<&'a Filter>,
}

/// Applies `process` to the calling process: rlimits, scheduler, I/O
/// priority, personality, working directory, capabilities, user and groups,
/// and no_new_privs. Also installs the seccomp filter when it must come
/// before the capabilities drop or has a notify listener (whose fd goes to
/// the runtime over `channel`), finds the program, and marks descriptors
/// from 3+`preserve_fds` on close-on-exec. The init and `exec` share it.
pub fn prepare<'a>(
    process: &Process,
    personality: Option<&LinuxPersonality>,
    seccomp: Option<&'a Filter>,
    capabilities: Option<&Sets>,
    preserve_fds: u32,
    channel: &Channel,
) -> Result<Prepared<'a>> {
    set_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    // Real-time policies and raised I/O priorities need capabilities that
    // the sets below may drop.
    if let Some(scheduler) = process.scheduler() {
        attributes::set_scheduler(scheduler)?;
    }
    if let Some(io) = process.io_priority() {
        attributes::set_io_priority(io.class(), io.priority())?;
    }
    if let Some(personality) = personality {
        attributes::set_personality(personality)?;
    }
    let env = environment(process);
    let cwd = process.cwd();
    let cwd_entered = enter_cwd(cwd, true)?;

    let no_new_privileges = process.no_new_privileges().unwrap_or(false);
    if let (Some(filter), false) = (seccomp, no_new_privileges) {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN,
        // which the capability sets below may drop.
        notify::install(filter, channel)?;
    }
    if let Some(sets) = capabilities {
        sets.apply_bounding()?;
    }
    set_user(process)?;
    if let Some(sets) = capabilities {
        sets.apply_process_sets()?;
    }
    if !cwd_entered {
        enter_cwd(cwd, false)?;
    }
    if no_new_privileges {
        nix::sys::prctl::set_no_new_privs().context(|| "set no_new_privs".into())?;
    }

    let args = process.args().clone().unwrap_or_default();
    let program = find_program(&args[0], &env)?;
    close_inherited_fds(3 + preserve_fds)?;

    let mut late_seccomp = seccomp.filter(|_| no_new_privileges);
    if let Some(filter) = late_seccomp.filter(|f| f.needs_listener()) {
        // The listener fd must reach the agent before `create` returns, as
        // in runc, so this filter cannot wait for execve. The init's steps
        // after this one (waiting for `start`, startContainer hooks) run
        // under it.
        notify::install(filter, channel)?;
        late_seccomp = None;
    }
    Ok(Prepared {
        program,
        args,
        env,
        late_seccomp,
    })
}

impl Prepared<'_> {
    /// Installs the seccomp filter that comes last, with no_new_privs set.
    /// The init calls it before the `startContainer` hooks, which runc runs
    /// under the container's filter too.
    pub fn install_late_seccomp(&mut self) -> Result<()> {
        if let Some(filter) = self.late_seccomp.take() {
            // `prepare` installed any filter with a listener, so there is
            // no listener fd here.
            filter.install()?;
        }
        Ok(())
    }

    /// Installs the late seccomp filter unless done already, clears the
    /// signal mask and execs. Returns only on failure.
    pub fn exec(mut self) -> Error {
        if let Err(e) = self.install_late_seccomp() {
            return e;
        }
        // `run` and `exec` block the signals they forward, but the program
        // starts with none blocked.
        let empty = nix::sys::signal::SigSet::empty();
        if let Err(e) = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&empty),
            None,
        ) {
            return Error::sys("clear the signal mask", e);
        }
        execve(&self.program, &self.args, &self.env)
    }
}

/// Enters the working directory, creating it when missing. On the first
/// try (as root) a permission error is left for the retry as the
/// process's user. Returns whether the directory was entered.
fn enter_cwd(cwd: &Path, first_try: bool) -> Result<bool> {
    if first_try && !cwd.exists() {
        std::fs::create_dir_all(cwd).context(|| format!("create process.cwd {}", cwd.display()))?;
    }
    match nix::unistd::chdir(cwd) {
        Ok(()) => check_cwd_inside(cwd).map(|()| true),
        Err(nix::Error::EACCES | nix::Error::EPERM) if first_try => Ok(false),
        Err(e) => Err(Error::sys(
            format!("chdir to process.cwd {} set in config.json", cwd.display()),
            e,
        )),
    }
}

/// Checks that the working directory is inside the process's root. A cwd
/// outside it, reached through a descriptor to a host directory, reads as
/// unreachable.
fn check_cwd_inside(cwd: &Path) -> Result<()> {
    match nix::unistd::getcwd() {
        Ok(path) if path.is_absolute() => Ok(()),
        Ok(_) | Err(nix::Error::ENOENT) => Err(Error::Spec(format!(
            "process.cwd {} is outside the container's root: refusing to run there",
            cwd.display()
        ))),
        Err(e) => Err(Error::sys(
            format!("getcwd after chdir to {}", cwd.display()),
            e,
        )),
    }
}

/// Marks every descriptor from `first` on close-on-exec, so that nothing
/// of the runtime or its caller leaks into the container.
fn close_inherited_fds(first: u32) -> Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on the
    // descriptors in the range and closes nothing.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc != 0 {
        return Err(Error::io(
            "mark inherited fds close-on-exec",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
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
