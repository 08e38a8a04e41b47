//! Hand-off of a notify listener fd to a seccomp agent. The runtime connects
//! to the profile's `listenerPath` (a `SOCK_STREAM` unix socket), sends the
//! container process state of the runtime spec as JSON with the fd attached
//! by SCM_RIGHTS in the same sendmsg, and closes the connection.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{send, sendmsg, ControlMessage, MsgFlags, UnixAddr};
use serde::Serialize;

use super::{Filter, SeccompError};
use crate::hooks::HookState;

/// Name of the listener fd in [`ContainerProcessState::fds`], fixed by the
/// runtime spec.
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// The runtime spec's container process state: what the agent receives
/// along with the fds named in `fds`, in the same order.
#[derive(Debug, Serialize)]
pub struct ContainerProcessState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub fds: Vec<&'static str>,
    /// The pid of the filtered process, as seen by the runtime.
    pub pid: i32,
    /// The profile's `listenerMetadata`, omitted when empty as runc does.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub metadata: &'a str,
    pub state: &'a HookState<'a>,
}

impl<'a> ContainerProcessState<'a> {
    /// Builds the state sent with the listener fd of `filter` for the
    /// process `pid` of the container in `state`.
    pub fn new(filter: &'a Filter, pid: i32, state: &'a HookState<'a>) -> Self {
        ContainerProcessState {
            oci_version: state.oci_version,
            fds: vec![SECCOMP_FD_NAME],
            pid,
            metadata: filter.listener_metadata().unwrap_or_default(),
            state,
        }
    }
}

/// Sends `state` with `listener` to the agent listening at `path`, in one
/// connection that is closed on return. The caller keeps its copy of the
/// listener fd, and should close it once this returns.
pub fn send_state(
    path: &Path,
    state: &ContainerProcessState,
    listener: BorrowedFd,
) -> Result<(), SeccompError> {
    let stream = UnixStream::connect(path).map_err(|source| SeccompError::AgentConnect {
        path: path.to_owned(),
        source,
    })?;
    let payload = serde_json::to_vec(state).expect("the container process state always encodes");
    let send_error = |e: nix::Error| SeccompError::AgentSend {
        path: path.to_owned(),
        source: std::io::Error::from(e),
    };

    let fds = [listener.as_raw_fd()];
    let control = [ControlMessage::ScmRights(&fds)];
    let mut sent = loop {
        let iov = [IoSlice::new(&payload)];
        match sendmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &iov,
            &control,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::Error::EINTR) => continue,
            other => break other.map_err(send_error)?,
        }
    };
    // A stream socket may take part of the payload, and the rest follows
    // without the fd, as the runtime spec allows.
    while sent < payload.len() {
        match send(stream.as_raw_fd(), &payload[sent..], MsgFlags::MSG_NOSIGNAL) {
            Err(nix::Error::EINTR) => continue,
            other => sent += other.map_err(send_error)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::IoSliceMut;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;

    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use serde_json::json;

    use super::*;
    use crate::seccomp::{compile, tests::profile};

    fn notify_filter(metadata: Option<&str>) -> Filter {
        let mut value = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        });
        if let Some(metadata) = metadata {
            value["listenerMetadata"] = json!(metadata);
        }
        compile(&profile(value)).unwrap()
    }

    fn hook_state(pid: i32) -> HookState<'static> {
        HookState {
            oci_version: "1.0.2",
            id: "box",
            status: "creating",
            pid: Some(pid),
            bundle: Path::new("/bundles/box"),
            annotations: [("key".to_string(), "value".to_string())].into(),
        }
    }

    #[test]
    fn state_json_has_runtime_spec_fields() {
        let filter = notify_filter(Some("MKDIR=1"));
        let hook_state = hook_state(42);
        let state = ContainerProcessState::new(&filter, 43, &hook_state);
        let value = serde_json::to_value(&state).unwrap();
        let expected = json!({
            "ociVersion": "1.0.2",
            "fds": ["seccompFd"],
            "pid": 43,
            "metadata": "MKDIR=1",
            "state": {
                "ociVersion": "1.0.2",
                "id": "box",
                "status": "creating",
                "pid": 42,
                "bundle": "/bundles/box",
                "annotations": {"key": "value"}
            }
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn state_json_omits_missing_metadata() {
        let filter = notify_filter(None);
        let hook_state = hook_state(42);
        let state = ContainerProcessState::new(&filter, 42, &hook_state);
        let value = serde_json::to_value(&state).unwrap();
        assert!(value.get("metadata").is_none(), "{value}");
    }

    #[test]
    fn send_state_attaches_fd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let filter = notify_filter(None);
        let hook_state = hook_state(7);
        let state = ContainerProcessState::new(&filter, 7, &hook_state);
        let (sent_fd, kept_end) = std::os::unix::net::UnixStream::pair().unwrap();
        send_state(&path, &state, sent_fd.as_fd()).unwrap();

        let (connection, _) = listener.accept().unwrap();
        let mut buffer = vec![0u8; 4096];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = recvmsg::<UnixAddr>(
            connection.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let mut received = vec![];
        for control in message.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = control {
                received.extend(fds);
            }
        }
        let len = message.bytes;
        assert_eq!(received.len(), 1);
        // SAFETY: the fd was just received with SCM_RIGHTS and is owned here.
        let received = unsafe { OwnedFd::from_raw_fd(received[0]) };
        let value: serde_json::Value = serde_json::from_slice(&buffer[..len]).unwrap();
        assert_eq!(value["fds"], json!(["seccompFd"]));
        assert_eq!(value["pid"], json!(7));

        // The received fd is the sent socket: a byte written through it
        // arrives at the other end of the pair.
        let mut received = std::os::unix::net::UnixStream::from(received);
        std::io::Write::write_all(&mut received, b"x").unwrap();
        let mut byte = [0u8; 1];
        std::io::Read::read_exact(&mut &kept_end, &mut byte).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn send_state_names_missing_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.sock");
        let filter = notify_filter(None);
        let hook_state = hook_state(7);
        let state = ContainerProcessState::new(&filter, 7, &hook_state);
        let (fd, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let error = send_state(&path, &state, fd.as_fd()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("listenerPath"), "{message}");
    }
}
