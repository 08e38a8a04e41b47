//! Terminals for tests: a console socket that receives a container's pty
//! master, and a pty that a runtime command runs on as a person's shell
//! would.

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// A listening `--console-socket` in a temporary directory.
pub struct ConsoleSocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> ConsoleSocket {
        let dir = tempfile::Builder::new()
            .prefix("hull-console-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        ConsoleSocket {
            _dir: dir,
            path,
            listener,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the runtime's connection and returns the pty master it sends.
    pub fn receive_master(&self) -> OwnedFd {
        let (stream, _) = self.listener.accept().unwrap();
        let mut data = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut data)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let message = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        for control in message.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = control {
                // SAFETY: the descriptor arrived with SCM_RIGHTS just now and
                // nothing else owns it.
                return unsafe { OwnedFd::from_raw_fd(fds[0]) };
            }
        }
        panic!("the console socket received no descriptor");
    }
}

impl Default for ConsoleSocket {
    fn default() -> Self {
        ConsoleSocket::new()
    }
}

/// Reads from `master` until `pattern` appears or `timeout` passes; returns
/// everything read.
pub fn read_until(master: &OwnedFd, pattern: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    let mut file = std::fs::File::from(master.try_clone().unwrap());
    while !text.contains(pattern) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let millis = left.as_millis().min(u16::MAX as u128) as u16;
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        let mut buffer = [0u8; 4096];
        match file.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buffer[..n])),
        }
    }
    text
}

/// Writes `text` to a pty master.
pub fn write(master: &OwnedFd, text: &str) {
    let mut file = std::fs::File::from(master.try_clone().unwrap());
    file.write_all(text.as_bytes()).unwrap();
}

/// A command running with a new pty as its controlling terminal and stdio.
pub struct PtySession {
    pub master: OwnedFd,
    child: Child,
}

impl PtySession {
    /// Starts `command` on a new pty of 30 rows and 100 columns.
    pub fn spawn(mut command: Command) -> PtySession {
        let size = nix::pty::Winsize {
            ws_row: 30,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let slave = pty.slave;
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        command
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: the closure only calls async-signal-safe system calls
        // (setsid, ioctl) between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop(slave);
        PtySession {
            master: pty.master,
            child,
        }
    }

    /// Waits for the command; returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            // Drain the pty between checks, so the command does not stall on a
            // full pty buffer.
            let _ = read_until(&self.master, "\u{0}", Duration::from_millis(20));
        }
    }
}
