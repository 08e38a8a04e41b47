//! `hull run ID`: create and start in one step. In the foreground it waits
//! for the container's init, forwards signals to it, deletes the container
//! when it exits, and exits with its status (128+N after signal N).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{terminal, CreateFlags, Global};
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
    let signal_fd = prepare_wait(args.no_subreaper)?;

    // Without --console-socket, a terminal container sends its pty master
    // here, and run copies between it and the caller's terminal.
    let (console_ours, console_theirs) =
        UnixStream::pair().map_err(|e| crate::Error::io("socketpair for the console", e))?;
    let console = (options.console_socket.is_none()).then(|| OwnedFd::from(console_theirs));
    let container = crate::process::create_with_console(&options, console)?;
    let terminal = options.console_socket.is_none()
        && container
            .state
            .config
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
    let master = match terminal {
        true => match crate::console::receive_master(&OwnedFd::from(console_ours)) {
            Ok(master) => Some(master),
            Err(e) => {
                let _ = lifecycle::delete(&container, true);
                return Err(e);
            }
        },
        false => None,
    };
    let _raw_mode = master.as_ref().map(|master| {
        crate::console::copy_window_size(0, master.as_raw_fd());
        terminal::RawMode::enter()
    });
    if let Err(e) = lifecycle::start(&container) {
        let _ = lifecycle::delete(&container, true);
        return Err(e);
    }
    let init = Pid::from_raw(container.state.init_pid);
    let status = wait_for_init(init, &signal_fd, master.as_ref())?;
    if let Some(master) = &master {
        terminal::drain(master);
    }
    if !args.keep {
        lifecycle::delete(&container, true)?;
    }
    Ok(status)
}

/// Blocks SIGCHLD and the forwarded signals, returning a signalfd that
/// reads them, and unless `no_subreaper` makes this process the subreaper
/// of the container's orphans. Called before the init exists, so that no
/// signal is lost before [`wait_for_init`].
pub(crate) fn prepare_wait(no_subreaper: bool) -> Result<SignalFd> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGCHLD);
    for signal in FORWARDED {
        signals.add(signal);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .context(|| "block signals".into())?;
    let signal_fd =
        SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC).context(|| "signalfd".into())?;
    if !no_subreaper {
        nix::sys::prctl::set_child_subreaper(true).context(|| "become a subreaper".into())?;
    }
    Ok(signal_fd)
}

/// Forwards signals to the init and copies terminal bytes until the init
/// exits; returns its exit status.
pub(crate) fn wait_for_init(
    init: Pid,
    signal_fd: &SignalFd,
    master: Option<&OwnedFd>,
) -> Result<i32> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    loop {
        let mut fds = vec![PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN)];
        if let Some(master) = master {
            fds.push(PollFd::new(
                master.as_fd(),
                if master_open {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                },
            ));
            fds.push(PollFd::new(
                stdin.as_fd(),
                if stdin_open {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                },
            ));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            other => other.context(|| "poll".into())?,
        };
        let ready = |i: usize| {
            fds.get(i).and_then(|fd| fd.revents()).is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let (signal_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        if let Some(master) = master {
            if master_ready && master_open {
                master_open = terminal::pump(master.as_fd(), stdout.as_fd());
            }
            if stdin_ready && stdin_open {
                stdin_open = terminal::pump(stdin.as_fd(), master.as_fd());
            }
        }
        if !signal_ready {
            continue;
        }
        let Some(info) = signal_fd.read_signal().context(|| "read signalfd".into())? else {
            continue;
        };
        let signal = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGCHLD);
        match (signal, master) {
            (Signal::SIGCHLD, _) => {
                if let Some(status) = reap(init)? {
                    return Ok(status);
                }
            }
            (Signal::SIGWINCH, Some(master)) => {
                crate::console::copy_window_size(0, master.as_raw_fd())
            }
            _ => {
                let _ = kill(init, signal);
            }
        }
    }
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
