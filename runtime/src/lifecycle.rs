//! Starting, signalling and deleting containers that `create` made.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::container::{Container, Operation, Status};
use crate::hooks::{self, HookState};
use crate::signal::SignalNumber;
use crate::state::Lock;
use crate::{Error, Result};

/// Maximum time `delete` waits for killed processes to die.
const KILL_WAIT: Duration = Duration::from_secs(10);

fn hook_state<'a>(container: &'a Container, status: &'a str, pid: Option<i32>) -> HookState<'a> {
    HookState {
        oci_version: &container.state.oci_version,
        id: &container.state.id,
        status,
        pid,
        bundle: &container.state.bundle,
        annotations: container.state.annotations(),
    }
}

/// Releases the init of a created container to exec its program, waits
/// until it did, then runs the `poststart` hooks.
pub fn start(container: &Container) -> Result<()> {
    let _lock = Lock::acquire(&container.root, container.id())?;
    container.status().check(Operation::Start, container.id())?;
    crate::exec_socket::start(&container.dir())?;
    let socket = container.exec_socket_path();
    fs::remove_file(&socket).map_err(|e| Error::io(format!("remove {}", socket.display()), e))?;
    let state = hook_state(container, "running", Some(container.state.init_pid));
    hooks::run(hooks::Kind::Poststart, &container.state.config, &state)
}

/// Freezes (`pause`) or thaws (`resume`) every process of the container.
pub fn set_paused(container: &Container, paused: bool) -> Result<()> {
    let _lock = Lock::acquire(&container.root, container.id())?;
    let operation = if paused {
        Operation::Pause
    } else {
        Operation::Resume
    };
    container.status().check(operation, container.id())?;
    container.state.cgroup.set_frozen(paused)?;
    Ok(())
}

/// Sends `signal` to the init, or with `all` to every process of the
/// container's cgroup.
pub fn signal(container: &Container, signal: SignalNumber, all: bool) -> Result<()> {
    let _lock = Lock::acquire(&container.root, container.id())?;
    let status = container.status();
    if all && status == Status::Stopped {
        // Processes of a container without its own pid namespace may
        // outlive the init.
        return signal_cgroup(container, signal);
    }
    status.check(Operation::Kill, container.id())?;
    if all {
        return signal_cgroup(container, signal);
    }
    signal
        .send(Pid::from_raw(container.state.init_pid))
        .map_err(|e| {
            Error::sys(
                format!("send {signal} to pid {}", container.state.init_pid),
                e,
            )
        })
}

fn signal_cgroup(container: &Container, signal: SignalNumber) -> Result<()> {
    let cgroup = &container.state.cgroup;
    let frozen = cgroup.is_frozen().unwrap_or(false);
    for pid in cgroup.pids()? {
        // A process that exits meanwhile is no error.
        let _ = signal.send(Pid::from_raw(pid));
    }
    if frozen && signal == SignalNumber::KILL {
        // A frozen process only dies once thawed.
        cgroup.set_frozen(false)?;
    }
    Ok(())
}

/// Deletes the container: with `force`, kills it first when it runs.
/// Removes the cgroup and the record and runs the `poststop` hooks.
pub fn delete(container: &Container, force: bool) -> Result<()> {
    let _lock = Lock::acquire(&container.root, container.id())?;
    let status = container.status();
    let operation = if force {
        Operation::ForceDelete
    } else {
        Operation::Delete
    };
    status.check(operation, container.id())?;
    let own_pid_namespace = container.state.own_pid_namespace;
    if status != Status::Stopped || !own_pid_namespace {
        if container.init_alive() {
            let _ = kill(Pid::from_raw(container.state.init_pid), Signal::SIGKILL);
        }
        if own_pid_namespace {
            // The init's death ends its pid namespace, and other processes in
            // a shared cgroup are not the container's. A frozen init only
            // dies once thawed.
            if container.state.cgroup.is_frozen().unwrap_or(false) {
                container.state.cgroup.set_frozen(false)?;
            }
        } else {
            signal_cgroup(container, SignalNumber::KILL)?;
        }
        wait_until_dead(container)?;
    }
    destroy(container)
}

/// Waits until the container's processes are gone. With a pid namespace of
/// its own, that is when the init is a zombie or gone: the kernel ends the
/// init of a pid namespace last, after every other process in it. Without
/// one, it is when the cgroup is empty.
fn wait_until_dead(container: &Container) -> Result<()> {
    let deadline = Instant::now() + KILL_WAIT;
    let mut pause = Duration::from_micros(200);
    loop {
        let (done, pids) = if container.state.own_pid_namespace {
            let init = crate::utils::proc_stat(container.state.init_pid);
            let dead = init.is_none_or(|stat| {
                stat.start_time != container.state.init_start_time
                    || matches!(stat.state, 'Z' | 'X')
            });
            (dead, vec![container.state.init_pid])
        } else {
            let pids = container.state.cgroup.pids().unwrap_or_default();
            (!container.init_alive() && pids.is_empty(), pids)
        };
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Message(format!(
                "container {}: processes {pids:?} still run {}s after SIGKILL",
                container.id(),
                KILL_WAIT.as_secs()
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Removes what is left of a stopped container and runs `poststop` hooks.
pub fn destroy(container: &Container) -> Result<()> {
    let cgroup = &container.state.cgroup;
    match cgroup.pids() {
        // Another container shares the cgroup, so it stays for that one.
        Ok(pids) if !pids.is_empty() => tracing::warn!(
            "cgroup {} of container {} still has {} process(es): left in place",
            cgroup.path,
            container.id(),
            pids.len()
        ),
        _ => cgroup.destroy()?,
    }
    let state = hook_state(container, "stopped", None);
    hooks::run(hooks::Kind::Poststop, &container.state.config, &state)?;
    let dir = container.dir();
    fs::remove_dir_all(&dir).map_err(|e| Error::io(format!("remove {}", dir.display()), e))
}

/// Removes the directory of `id` when it has no record and no command holds
/// its lock: what a create killed midway leaves behind.
pub fn remove_leftover(root: &std::path::Path, id: &str) -> Result<()> {
    crate::id::validate(id)?;
    let dir = crate::state::dir(root, id);
    let Some(_lock) = Lock::try_acquire(root, id)? else {
        return Ok(());
    };
    if dir.join(crate::state::STATE_FILE).exists() {
        return Ok(());
    }
    fs::remove_dir_all(&dir).map_err(|e| Error::io(format!("remove {}", dir.display()), e))
}
