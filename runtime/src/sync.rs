//! Messages between the runtime and the container's init during `create`
//! (or the new process of `exec`), over a `SOCK_SEQPACKET` socket pair: one
//! message a datagram, so that a closed peer reads as end of file and no
//! framing is needed. A message may carry one fd with SCM_RIGHTS.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use serde::{Deserialize, Serialize};

use crate::error::Context;
use crate::{Error, Result};

/// Largest message: an error text with its context fits easily.
const MAX_MESSAGE: usize = 64 * 1024;

/// One step of the hand-off between the runtime and the init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Init to runtime: the init moved itself into its v1 cgroups.
    Joined,
    /// Runtime to init: the init is in its cgroup, go on.
    Go,
    /// Init to runtime: namespaces and mounts are ready, so run the
    /// `prestart` and `createRuntime` hooks.
    RunHooks,
    /// Runtime to init: the hooks succeeded.
    HooksDone,
    /// Init or exec process to runtime, with the seccomp notify listener fd
    /// attached: send it to the agent at `listenerPath`.
    SeccompListener,
    /// Runtime to init or exec process: the agent has the listener fd.
    SeccompListenerDone,
    /// Init to runtime: everything is set up and the init waits for `start`.
    Ready,
    /// Init to runtime: set-up failed with this message.
    Failed(String),
}

/// One end of the socket pair.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Makes a connected pair of channels, closed on exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context(|| "socketpair for the init process".into())?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Returns the socket, for a child process that must keep it across exec.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    pub fn send(&self, message: &Message) -> Result<()> {
        self.send_message(message, None)
    }

    /// Sends `message` with a copy of `fd` attached (SCM_RIGHTS).
    pub fn send_with_fd(&self, message: &Message, fd: BorrowedFd) -> Result<()> {
        self.send_message(message, Some(fd))
    }

    fn send_message(&self, message: &Message, fd: Option<BorrowedFd>) -> Result<()> {
        let data = serde_json::to_vec(message).expect("sync messages always encode");
        let iov = [IoSlice::new(&data)];
        let fds: Vec<RawFd> = fd.iter().map(|fd| fd.as_raw_fd()).collect();
        let rights = [ControlMessage::ScmRights(&fds)];
        let control: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        loop {
            match sendmsg::<UnixAddr>(
                self.fd.as_raw_fd(),
                &iov,
                control,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(nix::Error::EINTR) => continue,
                other => {
                    other.context(|| format!("send {message:?} to the other side of create"))?;
                    return Ok(());
                }
            }
        }
    }

    /// Receives the next message, or `None` when the peer closed its end. An
    /// attached fd is closed.
    pub fn recv(&self) -> Result<Option<Message>> {
        Ok(self.recv_with_fd()?.map(|(message, _fd)| message))
    }

    /// Receives the next message with the fd attached to it, if any, made
    /// close-on-exec, or `None` when the peer closed its end.
    pub fn recv_with_fd(&self) -> Result<Option<(Message, Option<OwnedFd>)>> {
        let mut buffer = vec![0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buffer)];
            let received = recvmsg::<UnixAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            );
            let message = match received {
                Err(nix::Error::EINTR) => continue,
                other => other.context(|| "receive from the other side of create".into())?,
            };
            let mut fd = None;
            let controls = message
                .cmsgs()
                .context(|| "read the control data from the other side of create".into())?;
            for control in controls {
                if let ControlMessageOwned::ScmRights(raw_fds) = control {
                    for raw in raw_fds {
                        // SAFETY: the kernel just installed this fd in this
                        // process for the received SCM_RIGHTS message, and
                        // nothing else refers to it.
                        fd = Some(unsafe { OwnedFd::from_raw_fd(raw) });
                    }
                }
            }
            break (message.bytes, fd);
        };
        if len == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buffer[..len])
            .map(|message| Some((message, fd)))
            .map_err(|e| {
                Error::Message(format!(
                    "malformed message from the other side of create: {e}"
                ))
            })
    }

    /// Receives the next message and checks that it is `expected`.
    pub fn expect(&self, expected: &Message) -> Result<()> {
        match self.recv()? {
            Some(ref message) if message == expected => Ok(()),
            Some(Message::Failed(message)) => Err(Error::Message(message)),
            Some(other) => Err(Error::Message(format!(
                "expected {expected:?} from the other side of create, got {other:?}"
            ))),
            None => Err(Error::Message(format!(
                "the other side of create exited before sending {expected:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_pair() {
        let (a, b) = pair().unwrap();
        a.send(&Message::RunHooks).unwrap();
        a.send(&Message::Failed("mount /proc: EPERM".into()))
            .unwrap();
        b.expect(&Message::RunHooks).unwrap();
        let error = b.expect(&Message::Ready).unwrap_err().to_string();
        assert_eq!(error, "mount /proc: EPERM");
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }

    #[test]
    fn fd_crosses_the_pair() {
        let (a, b) = pair().unwrap();
        let (kept, sent) = std::os::unix::net::UnixStream::pair().unwrap();
        a.send_with_fd(&Message::SeccompListener, std::os::fd::AsFd::as_fd(&sent))
            .unwrap();
        drop(sent);
        a.send(&Message::Ready).unwrap();

        let (message, fd) = b.recv_with_fd().unwrap().unwrap();
        assert_eq!(message, Message::SeccompListener);
        let fd = fd.expect("an fd attached to SeccompListener");
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(
            flags & libc::FD_CLOEXEC,
            0,
            "received fd is not close-on-exec"
        );
        // The received fd is the sent end: data written to it reaches `kept`.
        let mut received = std::os::unix::net::UnixStream::from(fd);
        std::io::Write::write_all(&mut received, b"x").unwrap();
        let mut byte = [0u8; 1];
        std::io::Read::read_exact(&mut &kept, &mut byte).unwrap();
        assert_eq!(&byte, b"x");

        let (message, fd) = b.recv_with_fd().unwrap().unwrap();
        assert_eq!(message, Message::Ready);
        assert!(fd.is_none());
    }
}
