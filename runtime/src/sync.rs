//! Messages between the runtime and the container's init during `create`,
//! over a `SOCK_SEQPACKET` socket pair: one message a datagram, so that a
//! closed peer reads as end of file and no framing is needed.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::Context;
use crate::{Error, Result};

/// Largest message: an error text with its context fits easily.
const MAX_MESSAGE: usize = 64 * 1024;

/// One step of the hand-off between the runtime and the init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Runtime to init: the init is in its cgroup, go on.
    Go,
    /// Init to runtime: namespaces and mounts are ready; run the
    /// `prestart` and `createRuntime` hooks.
    RunHooks,
    /// Runtime to init: the hooks succeeded.
    HooksDone,
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
    /// The socket, for a child process that must keep it across exec.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    pub fn send(&self, message: &Message) -> Result<()> {
        let data = serde_json::to_vec(message).expect("sync messages always encode");
        send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .context(|| format!("send {message:?} to the other side of create"))?;
        Ok(())
    }

    /// Receives the next message; `None` when the peer closed its end.
    pub fn recv(&self) -> Result<Option<Message>> {
        let mut buffer = vec![0u8; MAX_MESSAGE];
        let len = loop {
            match recv(self.fd.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
                Err(nix::Error::EINTR) => continue,
                other => break other.context(|| "receive from the other side of create".into())?,
            }
        };
        if len == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buffer[..len])
            .map(Some)
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
}
