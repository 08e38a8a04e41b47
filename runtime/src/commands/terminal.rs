//! The terminal of foreground `run`: the caller's terminal in raw mode,
//! bytes copied between it and the container's pty master.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::termios::{self, SetArg, Termios};

/// Puts the caller's stdin terminal in raw mode; restores it on drop.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
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
pub fn pump(from: BorrowedFd, to: BorrowedFd) -> bool {
    let mut buffer = [0u8; 8192];
    let mut source = std::fs::File::from(from.try_clone_to_owned().expect("dup a live fd"));
    let mut sink = std::fs::File::from(to.try_clone_to_owned().expect("dup a live fd"));
    match source.read(&mut buffer) {
        Ok(0) | Err(_) => false,
        Ok(n) => sink.write_all(&buffer[..n]).is_ok(),
    }
}

/// Copies the rest of the master's output to stdout after the init exited.
pub fn drain(master: &OwnedFd) {
    let _ = nix::fcntl::fcntl(
        master.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let stdout = std::io::stdout();
    while pump(master.as_fd(), stdout.as_fd()) {}
    let _ = master.as_raw_fd();
}
