//! One `criu swrk` process: criu's RPC service on a private socket. The
//! runtime sends a `criu_req`, replies to each `criu_notify` that criu sends
//! before it goes on, and reads the final `criu_resp`. Each message is one
//! packet of a `SOCK_SEQPACKET` socket pair.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use nix::sys::socket::{
    recv, recvmsg, send, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag,
    SockType,
};
use prost::Message;

use super::rpc::{Notify, Req, ReqType, Resp};
use super::CriuError;

/// Upper bound of one criu message. criu's own responses are a few hundred
/// bytes.
const MAX_MESSAGE: usize = 1 << 20;

/// A running `criu swrk`, ended when dropped.
pub struct Swrk {
    child: Option<Child>,
    /// Closed by `reap`: end of file on it makes criu exit.
    socket: Option<OwnedFd>,
    binary: PathBuf,
}

impl Swrk {
    /// Starts `BINARY swrk FD`. The descriptors in `pass_fds` stay open in
    /// criu under the same numbers, so requests can name them.
    pub fn spawn(binary: &Path, pass_fds: &[RawFd]) -> Result<Swrk, CriuError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| CriuError::Io {
            context: "create the criu socket pair".into(),
            source: e.into(),
        })?;
        let mut inherited: Vec<RawFd> = pass_fds.to_vec();
        inherited.push(theirs.as_raw_fd());
        let mut command = Command::new(binary);
        command.arg("swrk").arg(theirs.as_raw_fd().to_string());
        // SAFETY: the closure runs in the forked child before exec and only
        // calls fcntl, which is async-signal-safe, on descriptors that the
        // parent keeps open until spawn returns.
        unsafe {
            command.pre_exec(move || {
                for &fd in &inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CriuError::NotFound {
                path: binary.to_path_buf(),
            },
            _ => CriuError::Io {
                context: format!("run {} swrk", binary.display()),
                source: e,
            },
        })?;
        drop(theirs);
        Ok(Swrk {
            child: Some(child),
            socket: Some(ours),
            binary: binary.to_path_buf(),
        })
    }

    /// Returns the pid of the criu process.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn socket_fd(&self) -> RawFd {
        self.socket.as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    /// Sends one request.
    pub fn send(&self, request: &Req) -> Result<(), CriuError> {
        let bytes = request.encode_to_vec();
        send(self.socket_fd(), &bytes, MsgFlags::MSG_NOSIGNAL).map_err(|e| CriuError::Io {
            context: format!("send a request to {} swrk", self.binary.display()),
            source: e.into(),
        })?;
        Ok(())
    }

    /// Reads one response. End of file means criu exited.
    pub fn receive(&self) -> Result<Resp, CriuError> {
        let mut buffer = vec![0u8; MAX_MESSAGE];
        let length = loop {
            match recv(self.socket_fd(), &mut buffer, MsgFlags::empty()) {
                Err(nix::Error::EINTR) => continue,
                other => {
                    break other.map_err(|e| CriuError::Io {
                        context: format!("read a response of {} swrk", self.binary.display()),
                        source: e.into(),
                    })?
                }
            }
        };
        if length == 0 {
            return Err(CriuError::Protocol(format!(
                "{} swrk exited without a response",
                self.binary.display()
            )));
        }
        Resp::decode(&buffer[..length]).map_err(|e| {
            CriuError::Protocol(format!(
                "undecodable response of {} swrk: {e}",
                self.binary.display()
            ))
        })
    }

    /// Receives a descriptor that criu sends after some notifications
    /// (`orphan-pts-master`).
    pub fn receive_fd(&self) -> Result<OwnedFd, CriuError> {
        let mut byte = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!(RawFd);
        let message = recvmsg::<()>(
            self.socket_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| CriuError::Io {
            context: "receive a descriptor from criu".into(),
            source: e.into(),
        })?;
        let cmsgs = message.cmsgs().map_err(|e| CriuError::Io {
            context: "read the control message from criu".into(),
            source: e.into(),
        })?;
        for cmsg in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel installed the descriptor in this
                    // process for this message, and nothing else owns it.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(CriuError::Protocol(
            "criu sent no descriptor after orphan-pts-master".into(),
        ))
    }

    /// Sends `request` and returns criu's final response, calling `on_notify`
    /// for each notification first. The reply to a notification reports failure
    /// when `on_notify` fails, which makes criu abort, and the error of
    /// `on_notify` is returned.
    pub fn call<E>(
        &mut self,
        request: &Req,
        mut on_notify: impl FnMut(&Swrk, &Notify) -> Result<(), E>,
    ) -> Result<Resp, E>
    where
        E: From<CriuError>,
    {
        self.send(request)?;
        loop {
            let response = self.receive()?;
            if response.r#type != ReqType::Notify as i32 {
                return Ok(response);
            }
            let notify = response.notify.clone().unwrap_or_default();
            let result = on_notify(self, &notify);
            let answer = Req {
                r#type: ReqType::Notify as i32,
                notify_success: Some(result.is_ok()),
                ..Default::default()
            };
            self.send(&answer)?;
            result?;
        }
    }

    /// Closes the socket, which ends `criu swrk`, and reaps it.
    pub fn finish(mut self) {
        self.reap();
    }

    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.socket = None;
            if let Err(e) = child.wait() {
                tracing::warn!("wait for criu {}: {e}", child.id());
            }
        }
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        self.reap();
    }
}
