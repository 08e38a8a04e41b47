//! The container's terminal: a pty made inside the container, its master
//! sent to the caller over `--console-socket` with SCM_RIGHTS, its slave
//! made the init's stdio and controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};

use crate::error::Context;
use crate::{Error, Result};

/// Connects to the caller's console socket. The runtime calls it before the
/// init is cloned, so that a wrong path fails before anything is created.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let stream = UnixStream::connect(path)
        .map_err(|e| Error::io(format!("connect to console socket {}", path.display()), e))?;
    Ok(OwnedFd::from(stream))
}

/// Makes the pty, sends its master over `socket`, and makes the slave the
/// calling process's stdio and controlling terminal. With `bind_console`
/// (the init's terminal), it also bind-mounts the slave on `/dev/console`.
/// Runs in the init after the switch to the container's root, so the pty
/// comes from the container's devpts.
pub fn setup(socket: OwnedFd, size: Option<(u16, u16)>, bind_console: bool) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context(|| "open /dev/ptmx".into())?;
    grantpt(&master).context(|| "grantpt".into())?;
    unlockpt(&master).context(|| "unlockpt".into())?;
    let slave_path = ptsname_r(&master).context(|| "ptsname".into())?;
    if let Some((height, width)) = size {
        let winsize = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize struct from the pointer, which
        // points to a live local.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &winsize) };
        if rc != 0 {
            return Err(Error::io(
                "set the console size",
                std::io::Error::last_os_error(),
            ));
        }
    }

    let slave = nix::fcntl::open(
        slave_path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context(|| format!("open {slave_path}"))?;
    if bind_console {
        mount_console(&slave_path);
    }

    let fds = [master.as_raw_fd()];
    let payload = [IoSlice::new(slave_path.as_bytes())];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &payload,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context(|| "send the console master over the console socket".into())?;
    drop(master);
    drop(socket);

    nix::unistd::setsid().context(|| "setsid".into())?;
    // SAFETY: TIOCSCTTY takes an int argument, and the fd is open.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::io(
            "make the console the controlling terminal",
            std::io::Error::last_os_error(),
        ));
    }
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which the init owns.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(Error::io(
                format!("dup2 console onto fd {target}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// Turns off the translation of "\n" into "\r\n" on the output of the pty
/// whose master is `master`, so that what the container writes reaches a
/// caller's terminal, which translates itself, byte for byte. runc 1.1.5
/// does this only for a terminal that it relays itself, and leaves the pty
/// as it is for a `--console-socket` receiver. hull does the same.
pub fn clear_onlcr(master: &OwnedFd) -> nix::Result<()> {
    let mut termios = tcgetattr(master)?;
    termios.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(master, SetArg::TCSANOW, &termios)
}

/// Bind-mounts the pty slave on `/dev/console`, as runc does, so programs
/// that open the console reach the container's terminal. A `/dev` without
/// room for it is left as it is.
fn mount_console(slave_path: &str) {
    use nix::mount::{mount, MsFlags};
    let console = Path::new("/dev/console");
    if !console.exists() && std::fs::File::create(console).is_err() {
        return;
    }
    if let Err(e) = mount(
        Some(slave_path),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        tracing::debug!("bind {slave_path} on /dev/console: {e}");
    }
}

/// Receives the pty master that the init sends over `socket`.
pub fn receive_master(socket: &OwnedFd) -> Result<OwnedFd> {
    use std::io::IoSliceMut;
    use std::os::fd::FromRawFd;

    use nix::sys::socket::{recvmsg, ControlMessageOwned};

    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context(|| "receive the console master".into())?;
    for control in message
        .cmsgs()
        .context(|| "read the console message".into())?
    {
        if let ControlMessageOwned::ScmRights(fds) = control {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS installed this descriptor in this
                // process just now, and nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::Message(
        "the init closed the console socket without sending the pty master".into(),
    ))
}

/// Copies the window size of `from` onto `to`, which must both be terminals.
pub fn copy_window_size(from: i32, to: i32) {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the live local, and
    // TIOCSWINSZ reads it. A descriptor that is not a terminal fails both.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &size);
        }
    }
}
