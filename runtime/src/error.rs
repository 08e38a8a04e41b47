//! The crate error: every module's error, collected.

use crate::cgroups::CgroupError;
use crate::rootfs::RootfsError;
use crate::seccomp::SeccompError;

/// Result of the runtime's library functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the runtime. Messages are lower-case, name the failing value,
/// and are printed as the single error line of a failed command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error("{0}")]
    Message(String),
}
