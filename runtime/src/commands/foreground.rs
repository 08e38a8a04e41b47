//! The foreground side of `run` and `exec`: signals forwarded to the
//! container's process, children reaped, and a terminal proxied between the
//! caller and the process's pty when there is no `--console-socket`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::Context;
use crate::Result;

/// Signals forwarded to the process instead of acted on.
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

/// The caller's side of a foreground process.
pub struct Foreground {
    signal_fd: SignalFd,
    console_ours: Option<UnixStream>,
    console_theirs: Option<UnixStream>,
    master: Option<OwnedFd>,
    _raw_mode: Option<RawMode>,
}

impl Foreground {
    /// Blocks the forwarded signals and SIGCHLD before the process is
    /// cloned, so none is lost before the wait. The process clears its mask
    /// before exec. With `subreaper`, orphans of the container are reaped
    /// here.
    pub fn new(subreaper: bool) -> Result<Foreground> {
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGCHLD);
        for signal in FORWARDED {
            signals.add(signal);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
            .context(|| "block signals".into())?;
        let signal_fd =
            SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC).context(|| "signalfd".into())?;
        if subreaper {
            nix::sys::prctl::set_child_subreaper(true).context(|| "become a subreaper".into())?;
        }
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| crate::Error::io("socketpair for the console", e))?;
        Ok(Foreground {
            signal_fd,
            console_ours: Some(ours),
            console_theirs: Some(theirs),
            master: None,
            _raw_mode: None,
        })
    }

    /// Returns the socket a terminal process sends its pty master to, in
    /// place of `--console-socket`.
    pub fn console_socket(&mut self) -> Option<OwnedFd> {
        self.console_theirs.take().map(OwnedFd::from)
    }

    /// Receives the pty master and puts the caller's terminal in raw mode.
    pub fn attach_terminal(&mut self) -> Result<()> {
        self.console_theirs = None;
        let ours = self
            .console_ours
            .take()
            .expect("the terminal is attached once");
        let master = crate::console::receive_master(&OwnedFd::from(ours))?;
        if let Err(error) = crate::console::clear_onlcr(&master) {
            tracing::warn!(%error, "failed to clear ONLCR on the container's terminal");
        }
        self.attach_master(master);
        Ok(())
    }

    /// Proxies `master` to the caller's terminal, put in raw mode.
    pub fn attach_master(&mut self, master: OwnedFd) {
        crate::console::copy_window_size(0, master.as_raw_fd());
        self._raw_mode = Some(RawMode::enter());
        self.master = Some(master);
    }

    /// Waits for `pid` while forwarding signals and terminal bytes and returns
    /// its exit status (128+N after signal N).
    pub fn wait(&self, pid: Pid) -> Result<i32> {
        let status = wait_for_process(pid, &self.signal_fd, self.master.as_ref())?;
        if let Some(master) = &self.master {
            drain(master);
        }
        Ok(status)
    }
}

/// Forwards signals to the process and copies terminal bytes until it
/// exits and returns its exit status.
fn wait_for_process(init: Pid, signal_fd: &SignalFd, master: Option<&OwnedFd>) -> Result<i32> {
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
                master_open = pump(master.as_fd(), stdout.as_fd());
            }
            if stdin_ready && stdin_open {
                stdin_open = pump(stdin.as_fd(), master.as_fd());
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

/// Reaps every exited child and returns the init's exit status once it exited.
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

/// Puts the caller's stdin terminal in raw mode and restores it on drop.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

/// Copies what is readable now from `from` to `to`. Returns false at end
/// of input or on an error, after which `from` is not polled again.
fn pump(from: BorrowedFd, to: BorrowedFd) -> bool {
    let mut buffer = [0u8; 8192];
    let mut source = std::fs::File::from(from.try_clone_to_owned().expect("dup a live fd"));
    let mut sink = std::fs::File::from(to.try_clone_to_owned().expect("dup a live fd"));
    match source.read(&mut buffer) {
        Ok(0) | Err(_) => false,
        Ok(n) => sink.write_all(&buffer[..n]).is_ok(),
    }
}

/// Copies the rest of the master's output to stdout after the init exited.
fn drain(master: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        master.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let stdout = std::io::stdout();
    while pump(master.as_fd(), stdout.as_fd()) {}
    let _ = master.as_raw_fd();
}
