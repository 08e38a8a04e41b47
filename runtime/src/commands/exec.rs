//! `hull exec ID COMMAND [ARGS...]` or `hull exec --process FILE ID`: runs
//! a new process in a running container. In the foreground it waits for
//! the process and exits with its status. A failure to start it exits 255,
//! as runc does.

use std::path::PathBuf;

use oci_spec::runtime::{Capability, Process, UserBuilder};

use super::foreground::Foreground;
use super::Global;
use crate::container::Container;
use crate::process::enter::{self, ExecOptions};
use crate::{Error, Result};

/// Exit status of `exec` when the process could not be started.
pub const START_FAILED: i32 = 255;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path to an AF_UNIX socket which will receive the pty master
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Current working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (NAME=VALUE)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// UID (format: <uid>[:<gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Path to a process.json with the process to run
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Detach from the process
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// SELinux label for the process (accepted, but SELinux is not supported)
    #[arg(long)]
    pub process_label: Option<String>,
    /// AppArmor profile for the process (accepted, but AppArmor is not supported)
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs on the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability to the process's bounding, effective and permitted sets
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Pass N additional file descriptors (3 to 3+N-1) to the process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec into a paused container
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run the process in a sub-cgroup of the container's cgroup: PATH for
    /// every controller or CONTROLLER[,CONTROLLER...]:PATH (repeatable)
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<String>,
    /// Container id
    pub id: String,
    /// Command and arguments (without --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    match exec(global, args) {
        Ok(code) => Ok(code),
        Err(error) => {
            tracing::error!("exec failed: {error}");
            Ok(START_FAILED)
        }
    }
}

fn exec(global: &Global, args: &Args) -> Result<i32> {
    let mut container = Container::load(&global.root, &args.id)?;
    if !args.cgroups.is_empty() {
        // enter::exec adds the process to `state.cgroup`, so a manager of
        // the sub-cgroups places it there.
        let paths = crate::cgroups::parse_sub_cgroups(&args.cgroups)?;
        container.state.cgroup = container.state.cgroup.sub_cgroup(&paths)?;
    }

    let process = build_process(&container, args)?;
    let terminal = process.terminal().unwrap_or(false);
    let proxy = terminal && args.console_socket.is_none() && !args.detach;
    let mut foreground = match args.detach {
        true => None,
        false => Some(Foreground::new(false)?),
    };
    let console = match (&mut foreground, proxy) {
        (Some(foreground), true) => foreground.console_socket(),
        _ => None,
    };

    let options = ExecOptions {
        process,
        console_socket: args.console_socket.clone(),
        console,
        preserve_fds: args.preserve_fds,
        ignore_paused: args.ignore_paused,
    };
    let pid = enter::exec(&container, options)?;

    if let Some(pid_file) = &args.pid_file {
        crate::utils::write_atomic(pid_file, pid.to_string().as_bytes())
            .map_err(|e| Error::io(format!("write pid file {}", pid_file.display()), e))?;
    }
    let Some(mut foreground) = foreground else {
        return Ok(0);
    };
    if proxy {
        foreground.attach_terminal()?;
    }
    foreground.wait(pid)
}

/// Builds the process to run: `--process FILE`, or the container's process
/// with the command line's args and overrides.
fn build_process(container: &Container, args: &Args) -> Result<Process> {
    if let Some(path) = &args.process {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("read process file {}", path.display()), e))?;
        return parse_process_file(&text)
            .map_err(|e| Error::Spec(format!("invalid process file {}: {e}", path.display())));
    }
    if args.command.is_empty() {
        return Err(Error::Spec(
            "exec args cannot be empty: give a command after the container id".into(),
        ));
    }
    let mut process = container.state.config.process().clone().unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    process.set_console_size(None);
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    process.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = parse_user(user)?;
        let user = UserBuilder::default()
            .uid(uid)
            .gid(gid)
            .additional_gids(args.additional_gids.clone())
            .build()
            .map_err(|e| Error::Spec(format!("--user {user}: {e}")))?;
        process.set_user(user);
    } else if !args.additional_gids.is_empty() {
        let mut user = process.user().clone();
        user.set_additional_gids(Some(args.additional_gids.clone()));
        process.set_user(user);
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if !args.cap.is_empty() {
        add_capabilities(&mut process, &args.cap)?;
    }
    Ok(process)
}

/// Parses a `--process` file. A file without `user` runs as uid 0 and
/// gid 0, as runc 1.1 does, though the OCI type requires the field.
fn parse_process_file(text: &str) -> serde_json::Result<Process> {
    let mut value: serde_json::Value = serde_json::from_str(text)?;
    if let Some(object) = value.as_object_mut() {
        object
            .entry("user")
            .or_insert_with(|| serde_json::json!({ "uid": 0, "gid": 0 }));
    }
    serde_json::from_value(value)
}

/// Parses `UID[:GID]`. The group defaults to 0 as in runc.
fn parse_user(user: &str) -> Result<(u32, u32)> {
    let invalid = || {
        Error::Spec(format!(
            "invalid --user {user:?}: expected UID[:GID] as numbers"
        ))
    };
    let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
    Ok((
        uid.parse().map_err(|_| invalid())?,
        gid.parse().map_err(|_| invalid())?,
    ))
}

/// Adds `--cap` capabilities to the bounding, effective and permitted
/// sets, and to the ambient set when the process has inheritable ones.
fn add_capabilities(process: &mut Process, names: &[String]) -> Result<()> {
    let mut sets = process.capabilities().clone().unwrap_or_default();
    for name in names {
        let full = if name.starts_with("CAP_") {
            name.clone()
        } else {
            format!("CAP_{name}")
        };
        let cap: Capability = serde_json::from_value(serde_json::Value::String(full.clone()))
            .map_err(|_| Error::Spec(format!("--cap: unknown capability \"{name}\"")))?;
        let add = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut set = set.clone().unwrap_or_default();
            set.insert(cap);
            Some(set)
        };
        sets.set_bounding(add(sets.bounding()));
        sets.set_effective(add(sets.effective()));
        sets.set_permitted(add(sets.permitted()));
        if sets
            .inheritable()
            .as_ref()
            .is_some_and(|set| !set.is_empty())
        {
            sets.set_ambient(add(sets.ambient()));
        }
    }
    process.set_capabilities(Some(sets));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parses_uid_and_gid() {
        assert_eq!(parse_user("1000:100").unwrap(), (1000, 100));
        assert_eq!(parse_user("7").unwrap(), (7, 0));
    }

    #[test]
    fn user_rejects_names() {
        let message = parse_user("nobody").unwrap_err().to_string();
        assert!(message.contains("\"nobody\""), "{message}");
        assert!(parse_user("1:x").is_err());
    }

    #[test]
    fn cap_adds_to_three_sets() {
        let mut process = Process::default();
        add_capabilities(&mut process, &["NET_ADMIN".into()]).unwrap();
        let sets = process.capabilities().clone().unwrap();
        for set in [sets.bounding(), sets.effective(), sets.permitted()] {
            assert!(set.as_ref().unwrap().contains(&Capability::NetAdmin));
        }
    }

    #[test]
    fn process_file_without_user_runs_as_root() {
        let process = parse_process_file(r#"{"args": ["true"], "cwd": "/"}"#).unwrap();
        assert_eq!(process.user().uid(), 0);
        assert_eq!(process.user().gid(), 0);

        let given = r#"{"args": ["true"], "cwd": "/", "user": {"uid": 7, "gid": 8}}"#;
        let process = parse_process_file(given).unwrap();
        assert_eq!(process.user().uid(), 7);
        assert_eq!(process.user().gid(), 8);
    }

    #[test]
    fn cap_rejects_unknown_name() {
        let mut process = Process::default();
        assert!(add_capabilities(&mut process, &["FLY".into()]).is_err());
    }
}
