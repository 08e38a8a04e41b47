//! The crate error: every module's error, collected.
//!
//! Messages are lower-case, name the failing value, and are printed as the
//! single error line of a failed command. Some phrases are matched by
//! callers (containerd and podman look for "does not exist" and
//! "container not running"), so those stay as runc words them.

use std::io;

use crate::cgroups::CgroupError;
use crate::rootfs::RootfsError;
use crate::seccomp::SeccompError;

/// Result of the runtime's library functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id \"{id}\": {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("container does not exist: {0}")]
    NotExist(String),
    #[error("container with id exists: {0}")]
    Exists(String),
    #[error("container not running")]
    NotRunning,
    #[error("cannot {action} container {id}: it is {status}")]
    BadStatus {
        action: &'static str,
        id: String,
        status: &'static str,
    },
    #[error("unknown signal \"{0}\"")]
    UnknownSignal(String),
    #[error("{0}")]
    Spec(String),
    #[error("{context}: {}", io_text(source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Criu(#[from] crate::criu::CriuError),
    #[error("{0}")]
    Message(String),
}

/// Returns the text of an I/O error without Rust's " (os error N)" suffix.
fn io_text(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => error.to_string(),
    }
}

impl Error {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a system call error with what was being done and to what.
    pub fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys {
            context: context.into(),
            source,
        }
    }
}

/// Adds context to the I/O and system call results of this crate.
pub trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for Result<T, io::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(context(), source))
    }
}

impl<T> Context<T> for Result<T, nix::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::sys(context(), source))
    }
}
