//! `exec`: a new process in a running container. It joins the init's
//! namespaces and cgroup, takes the container's seccomp profile and the
//! process's capabilities, user and limits, and execs.

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, LinuxPersonality, Process};

use super::clone::{self, Forked};
use super::{exec, notify};
use crate::capabilities;
use crate::cgroups::Manager;
use crate::container::{Container, Status};
use crate::error::Context;
use crate::hooks::HookState;
use crate::seccomp;
use crate::sync::{self, Message};
use crate::{Error, Result};

/// The process `exec` runs, and how.
pub struct ExecOptions {
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    /// A connected socket that receives the pty master in place of
    /// `--console-socket` (foreground `exec -t` proxies the terminal).
    pub console: Option<OwnedFd>,
    pub preserve_fds: u32,
    /// Allows exec into a paused container (the process starts frozen).
    pub ignore_paused: bool,
}

/// The namespace types in the order the new process joins them: user first
/// (it decides the rights for the others), mount last but for cgroup.
const JOIN_ORDER: [(LinuxNamespaceType, &str); 8] = [
    (LinuxNamespaceType::User, "user"),
    (LinuxNamespaceType::Ipc, "ipc"),
    (LinuxNamespaceType::Uts, "uts"),
    (LinuxNamespaceType::Network, "net"),
    (LinuxNamespaceType::Pid, "pid"),
    (LinuxNamespaceType::Time, "time"),
    (LinuxNamespaceType::Mount, "mnt"),
    (LinuxNamespaceType::Cgroup, "cgroup"),
];

/// Starts the process in `container` and returns its pid once it has exec'd,
/// or at once in a paused container, where it execs on resume.
pub fn exec(container: &Container, options: ExecOptions) -> Result<Pid> {
    let status = container.status();
    match status {
        Status::Running | Status::Created => {}
        Status::Paused if options.ignore_paused => {}
        Status::Paused => {
            return Err(Error::Message(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            ))
        }
        Status::Stopped | Status::Creating => {
            return Err(Error::Message("cannot exec in a stopped container".into()))
        }
    }
    let spec = &container.state.config;
    let process = &options.process;
    if process.args().as_ref().is_none_or(|args| args.is_empty()) {
        return Err(Error::Spec("exec: the process has no args".into()));
    }
    crate::spec::check_user(process.user())?;
    if !process.cwd().is_absolute() {
        return Err(Error::Spec(format!(
            "exec: cwd {:?} must be an absolute path",
            process.cwd()
        )));
    }
    let filter = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.seccomp().as_ref())
        .map(seccomp::compile)
        .transpose()?;
    if status == Status::Paused && filter.as_ref().is_some_and(|f| f.needs_listener()) {
        // The process would install the filter only on resume, after this
        // command has returned, so no runtime would pass its listener fd on.
        return Err(Error::Message(
            "cannot exec in a paused container whose seccomp profile uses SCMP_ACT_NOTIFY: resume it first".into(),
        ));
    }
    let sets = process
        .capabilities()
        .as_ref()
        .map(capabilities::Sets::from_spec)
        .transpose()?;
    exec::check_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    let console = match (
        &options.console,
        &options.console_socket,
        process.terminal().unwrap_or(false),
    ) {
        (Some(console), _, true) => Some(
            console
                .try_clone()
                .context(|| "dup the console socket".into())?,
        ),
        (None, Some(path), true) => Some(crate::console::connect(path)?),
        (_, None, true) => {
            return Err(Error::Spec(
                "exec: the process wants a terminal but no --console-socket was given".into(),
            ))
        }
        (_, _, false) => None,
    };

    let namespaces = open_namespaces(container)?;
    // Joined here, the pid namespace applies to the child cloned next.
    for (kind, fd) in &namespaces {
        if *kind == LinuxNamespaceType::Pid {
            setns(fd.as_fd(), CloneFlags::CLONE_NEWPID)
                .context(|| "join the container's pid namespace".into())?;
        }
    }

    // The new process joins the v1 cgroups itself and starts in the
    // cgroup2 directory, as the init does in `create`, except in a paused
    // container: it would freeze on joining the freezer cgroup before it
    // could report that it joined.
    let cgroup = &container.state.cgroup;
    let self_join = status != Status::Paused;
    let unified = if self_join {
        cgroup.open_unified()?
    } else {
        None
    };
    let (parent, child) = sync::pair()?;
    let forked = clone::fork_into(CloneFlags::empty(), unified.as_ref().map(|fd| fd.as_fd()));
    let (pid, in_unified) = match forked {
        Ok(Forked::Parent { child, in_cgroup }) => (child, in_cgroup),
        Ok(Forked::Child) => {
            drop(parent);
            let plan = Plan {
                join_cgroup: self_join.then_some(cgroup),
                namespaces: &namespaces,
                process,
                personality: spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
                filter: filter.as_ref(),
                sets: sets.as_ref(),
                console,
                preserve_fds: options.preserve_fds,
            };
            let error = match enter(plan, &child) {
                Ok(never) => match never {},
                Err(error) => error,
            };
            let _ = child.send(&Message::Failed(error.to_string()));
            // SAFETY: _exit ends this copy without running the parent's
            // atexit handlers or flushing the stdio buffers it shares.
            unsafe { libc::_exit(255) }
        }
        Err(e) => return Err(Error::sys("fork the exec process", e)),
    };
    drop(child);
    // The new process is not in the container until it is in its cgroup.
    let joined = if self_join {
        parent.expect(&Message::Joined).and_then(|()| {
            if !in_unified {
                cgroup.add_process_unified(pid.as_raw())?;
            }
            Ok(())
        })
    } else {
        cgroup.add_process(pid.as_raw()).map_err(Error::from)
    };
    if let Err(e) = joined {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        return Err(e);
    }
    parent.send(&Message::Go)?;
    if status == Status::Paused {
        // The process froze on entering the cgroup and execs on resume, so
        // there is nothing to wait for now.
        return Ok(pid);
    }
    let annotations = container.state.annotations();
    let state = HookState {
        oci_version: &container.state.oci_version,
        id: &container.state.id,
        status: "running",
        pid: Some(container.state.init_pid),
        bundle: &container.state.bundle,
        annotations,
    };
    // A successful exec closes the child's end of the pair (close-on-exec).
    loop {
        let failure = match parent.recv_with_fd()? {
            None => return Ok(pid),
            Some((Message::SeccompListener, listener)) => {
                match notify::forward(&parent, filter.as_ref(), listener, pid.as_raw(), &state) {
                    Ok(()) => continue,
                    Err(error) => error,
                }
            }
            Some((Message::Failed(message), _)) => {
                let _ = nix::sys::wait::waitpid(pid, None);
                return Err(Error::Message(message));
            }
            Some((other, _)) => {
                Error::Message(format!("unexpected {other:?} from the exec process"))
            }
        };
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        return Err(failure);
    }
}

/// Opens the namespaces of the container's init that the spec lists.
fn open_namespaces(container: &Container) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let listed: Vec<LinuxNamespaceType> = container
        .state
        .config
        .linux()
        .as_ref()
        .and_then(|linux| linux.namespaces().as_ref())
        .map(|list| list.iter().map(|n| n.typ()).collect())
        .unwrap_or_default();
    let pid = container.state.init_pid;
    let mut opened = vec![];
    for (kind, name) in JOIN_ORDER {
        if !listed.contains(&kind) {
            continue;
        }
        let path = format!("/proc/{pid}/ns/{name}");
        let file = File::open(&path).context(|| format!("open {path} of the container's init"))?;
        opened.push((kind, OwnedFd::from(file)));
    }
    // The init may have exited and its pid been reused while the files
    // were opened.
    if !container.init_alive() {
        return Err(Error::Message("cannot exec in a stopped container".into()));
    }
    Ok(opened)
}

/// Everything the new process needs, prepared before the fork.
struct Plan<'a> {
    /// The cgroup whose v1 hierarchies the process joins itself.
    join_cgroup: Option<&'a Manager>,
    namespaces: &'a [(LinuxNamespaceType, OwnedFd)],
    process: &'a Process,
    personality: Option<&'a LinuxPersonality>,
    filter: Option<&'a seccomp::Filter>,
    sets: Option<&'a capabilities::Sets>,
    console: Option<OwnedFd>,
    preserve_fds: u32,
}

/// Joins the namespaces, applies the process and execs, in the new process.
/// Returns only on failure.
fn enter(plan: Plan, channel: &sync::Channel) -> Result<Infallible> {
    let Plan {
        join_cgroup,
        namespaces,
        process,
        personality,
        filter,
        sets,
        console,
        preserve_fds,
    } = plan;
    // Like the init, the process runs the host's hull binary until it execs.
    // Because it is not dumpable, it cannot be reached through /proc/PID/exe.
    nix::sys::prctl::set_dumpable(false).context(|| "make the exec process non-dumpable".into())?;
    // Nothing of the caller's but stdio and the preserved descriptors may be
    // open while the process enters the container (CVE-2024-21626).
    let mut keep: Vec<i32> = (3..3 + preserve_fds as i32).collect();
    keep.push(std::os::fd::AsRawFd::as_raw_fd(&channel.fd()));
    keep.extend(console.as_ref().map(std::os::fd::AsRawFd::as_raw_fd));
    keep.extend(
        namespaces
            .iter()
            .map(|(_, fd)| std::os::fd::AsRawFd::as_raw_fd(fd)),
    );
    crate::utils::close_fds_except(3, &keep).context(|| "close inherited fds".into())?;
    if let Some(cgroup) = join_cgroup {
        cgroup.join_v1_self()?;
        channel.send(&Message::Joined)?;
    }
    channel.expect(&Message::Go)?;
    for (kind, fd) in namespaces {
        if *kind == LinuxNamespaceType::Pid {
            continue;
        }
        let flag = CloneFlags::from_bits_retain(*kind as i32);
        setns(fd.as_fd(), flag).context(|| format!("join the container's {kind:?} namespace"))?;
    }
    if let Some(console) = console {
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup(console, size, false)?;
    }
    let prepared = exec::prepare(process, personality, filter, sets, preserve_fds, channel)?;
    Err(prepared.exec())
}
