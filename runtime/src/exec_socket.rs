//! The start handshake. `create` leaves the init blocked in accept(2) on a
//! listening socket in the container's state directory. `start` connects,
//! and the init runs the `startContainer` hooks and execs. When a step
//! fails, the init sends the error over the connection. A successful exec
//! closes the connection (close-on-exec), which `start` reads as success.
//! Unlike runc's FIFO, this lets `start` report a failure of the last steps.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    accept4, bind, connect, listen, recv, send, socket, AddressFamily, Backlog, MsgFlags, SockFlag,
    SockType, UnixAddr,
};

use crate::error::Context;
use crate::{Error, Result};

/// File name of the socket in the container's state directory.
pub const FILE: &str = "exec.sock";

/// Largest error message the init sends back.
const MAX_MESSAGE: usize = 16 * 1024;

/// Returns a short path to `FILE` in `dir` through an open descriptor of
/// `dir`, because a socket path must fit in 108 bytes and state paths can
/// be longer.
fn short_address(dir: &File) -> Result<UnixAddr> {
    let path = format!("/proc/self/fd/{}/{FILE}", dir.as_raw_fd());
    UnixAddr::new(path.as_str()).context(|| format!("socket address {path}"))
}

fn open_dir(dir: &Path) -> Result<File> {
    File::open(dir).context(|| format!("open {}", dir.display()))
}

fn seqpacket() -> Result<OwnedFd> {
    socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context(|| "create the exec socket".into())
}

/// Creates the listening socket in `dir`, which the init inherits.
pub fn listen_in(dir: &Path) -> Result<OwnedFd> {
    let handle = open_dir(dir)?;
    let listener = seqpacket()?;
    bind(listener.as_raw_fd(), &short_address(&handle)?)
        .context(|| format!("bind {}", dir.join(FILE).display()))?;
    listen(&listener, Backlog::new(1).expect("1 is a valid backlog"))
        .context(|| format!("listen on {}", dir.join(FILE).display()))?;
    Ok(listener)
}

/// Blocks until `start` connects and returns the connection.
pub fn accept_start(listener: &OwnedFd) -> Result<OwnedFd> {
    loop {
        match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => {
                // SAFETY: accept4 returned a new descriptor that no other owner holds.
                return Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::sys("accept on the exec socket", e)),
        }
    }
}

/// Sends the init's error to the waiting `start`.
pub fn report_failure(connection: &OwnedFd, message: &str) {
    let bytes = message.as_bytes();
    let bytes = &bytes[..bytes.len().min(MAX_MESSAGE)];
    // With `start` gone, the error has no reader left.
    let _ = send(connection.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL);
}

/// Lets the init of the container in `dir` exec its program, and waits
/// until it did. Fails with `container not running` when no init listens.
pub fn start(dir: &Path) -> Result<()> {
    let handle = open_dir(dir)?;
    let socket = seqpacket()?;
    match connect(socket.as_raw_fd(), &short_address(&handle)?) {
        Ok(()) => {}
        Err(nix::Error::ECONNREFUSED | nix::Error::ENOENT) => return Err(Error::NotRunning),
        Err(e) => {
            return Err(Error::sys(
                format!("connect to {}", dir.join(FILE).display()),
                e,
            ))
        }
    }
    let mut buffer = vec![0u8; MAX_MESSAGE];
    let len = loop {
        match recv(socket.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
            Err(nix::Error::EINTR) => continue,
            Ok(len) => break len,
            // The init died without a word.
            Err(nix::Error::ECONNRESET) => return Err(Error::NotRunning),
            Err(e) => return Err(Error::sys("read from the exec socket", e)),
        }
    };
    if len == 0 {
        return Ok(());
    }
    Err(Error::Message(
        String::from_utf8_lossy(&buffer[..len]).into_owned(),
    ))
}

/// Returns the path of the socket in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}
