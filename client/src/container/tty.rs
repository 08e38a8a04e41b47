//! The user's terminal while hullctl relays a container's terminal: raw
//! mode, and its size.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::termios::{self, SetArg, Termios};

/// Raw mode on hullctl's stdin, undone on drop.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    /// Puts stdin in raw mode when it is a terminal; does nothing otherwise.
    pub fn enable() -> RawMode {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        let Ok(saved) = termios::tcgetattr(fd) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if termios::tcsetattr(fd, SetArg::TCSANOW, &raw).is_err() {
            return RawMode { saved: None };
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let stdin = std::io::stdin();
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

nix::ioctl_read_bad!(get_window_size, libc::TIOCGWINSZ, libc::winsize);

/// Returns the size of the terminal on `fd` as (columns, rows).
pub fn size(fd: BorrowedFd<'_>) -> Option<(u32, u32)> {
    use std::os::fd::AsRawFd;
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `size`, which outlives the
    // call.
    unsafe { get_window_size(fd.as_raw_fd(), &mut size) }.ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((u32::from(size.ws_col), u32::from(size.ws_row)))
}

/// Returns the size of hullctl's stdout terminal.
pub fn stdout_size() -> Option<(u32, u32)> {
    size(std::io::stdout().as_fd())
}
