//! `hull run ID`: create and start in one step. In the foreground it waits
//! for the container's init, forwards signals to it, deletes the container
//! when it exits, and exits with its status (128+N after signal N).

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{CreateFlags, Global};
use crate::error::Context;
use crate::{lifecycle, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after its process exits
    #[arg(long)]
    pub keep: bool,
    /// Do not make this process a subreaper for the container's orphans
    #[arg(long)]
    pub no_subreaper: bool,
    /// Container id
    pub id: String,
}

/// Signals that `run` forwards to the init instead of acting on them.
const FORWARDED: [Signal; 11] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGWINCH,
];

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let options = args.flags.options(global, &args.id);
    if args.detach {
        let container = crate::process::create(&options)?;
        if let Err(e) = lifecycle::start(&container) {
            let _ = lifecycle::delete(&container, true);
            return Err(e);
        }
        return Ok(0);
    }

    // Blocked before the clone, so no signal is lost between the init's
    // birth and the wait; the init clears its mask before exec.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGCHLD);
    for signal in FORWARDED {
        signals.add(signal);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .context(|| "block signals".into())?;
    if !args.no_subreaper {
        nix::sys::prctl::set_child_subreaper(true).context(|| "become a subreaper".into())?;
    }

    let container = crate::process::create(&options)?;
    if let Err(e) = lifecycle::start(&container) {
        let _ = lifecycle::delete(&container, true);
        return Err(e);
    }
    let init = Pid::from_raw(container.state.init_pid);
    let status = loop {
        let signal = signals.wait().context(|| "wait for signals".into())?;
        if signal != Signal::SIGCHLD {
            let _ = kill(init, signal);
            continue;
        }
        if let Some(status) = reap(init)? {
            break status;
        }
    };
    if !args.keep {
        lifecycle::delete(&container, true)?;
    }
    Ok(status)
}

/// Reaps every exited child; returns the init's exit status once it exited.
fn reap(init: Pid) -> Result<Option<i32>> {
    let mut init_status = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == init => init_status = Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == init => {
                init_status = Some(128 + signal as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => return Ok(init_status),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(crate::Error::sys("waitpid", e)),
        }
    }
}
