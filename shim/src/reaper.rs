//! The shim's only reaper of child processes.
//!
//! The shim is a child subreaper, so the container processes that the
//! runtime forks (init and exec processes) become its children when the
//! runtime exits. One task handles SIGCHLD, collects every exited child with
//! `waitpid(-1, WNOHANG)` and sends each status to the claim on that pid:
//! a runtime command in progress or a container process. Nothing else in
//! the shim may wait for children, or it would steal statuses.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// Time an unclaimed exit status is kept. A container
/// process can exit before the shim has read its pid from the runtime's pid
/// file, and the claim then finds the status here.
const UNCLAIMED_TTL: Duration = Duration::from_secs(60);

/// Exit status in containerd's form: the exit code, or 128 plus the signal
/// number for a process killed by a signal.
pub type ExitCode = u32;

#[derive(Default)]
struct State {
    claims: HashMap<i32, oneshot::Sender<ExitCode>>,
    unclaimed: HashMap<i32, (ExitCode, Instant)>,
}

/// Handle to the reaper, cheap to clone.
#[derive(Clone, Default)]
pub struct Reaper {
    state: Arc<Mutex<State>>,
}

impl Reaper {
    /// Makes this process a child subreaper and starts the SIGCHLD task on
    /// the current tokio runtime.
    pub fn start() -> std::io::Result<Reaper> {
        set_child_subreaper()?;
        let reaper = Reaper::default();
        let mut sigchld = signal(SignalKind::child())?;
        let task_reaper = reaper.clone();
        tokio::spawn(async move {
            loop {
                task_reaper.reap();
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(reaper)
    }

    /// Spawns `command` and claims its exit status in one step, so the
    /// reaper cannot collect the child before the claim exists.
    ///
    /// The returned `Child` must never be waited on.
    pub fn spawn(
        &self,
        command: &mut Command,
    ) -> std::io::Result<(Child, oneshot::Receiver<ExitCode>)> {
        let mut state = self.state.lock().expect("reaper state lock poisoned");
        let child = command.spawn()?;
        let (sender, receiver) = oneshot::channel();
        state.claims.insert(child.id() as i32, sender);
        Ok((child, receiver))
    }

    /// Claims the exit status of `pid`, a child that this shim did not
    /// spawn itself (a container process reparented to the shim). The
    /// status may already be waiting.
    pub fn claim(&self, pid: i32) -> oneshot::Receiver<ExitCode> {
        let (sender, receiver) = oneshot::channel();
        let mut state = self.state.lock().expect("reaper state lock poisoned");
        match state.unclaimed.remove(&pid) {
            Some((code, _)) => {
                let _ = sender.send(code);
            }
            None => {
                state.claims.insert(pid, sender);
            }
        }
        receiver
    }

    /// Collects every exited child and dispatches the statuses.
    fn reap(&self) {
        let mut state = self.state.lock().expect("reaper state lock poisoned");
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code as ExitCode),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, 128 + signal as ExitCode),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(error) => {
                    tracing::error!(%error, "waitpid failed");
                    break;
                }
            };
            let pid = pid.as_raw();
            tracing::debug!(pid, code, "child exited");
            match state.claims.remove(&pid) {
                Some(sender) => {
                    let _ = sender.send(code);
                }
                None => {
                    let now = Instant::now();
                    state
                        .unclaimed
                        .retain(|_, (_, at)| now.duration_since(*at) < UNCLAIMED_TTL);
                    state.unclaimed.insert(pid, (code, now));
                }
            }
        }
    }
}

fn set_child_subreaper() -> std::io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no
    // memory of this process.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if result == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
