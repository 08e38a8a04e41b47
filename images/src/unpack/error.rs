//! Errors of layer unpacking.

use std::io;
use std::path::PathBuf;

/// Failure to unpack a layer.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry would write outside the destination or is malformed, so the
    /// whole layer is rejected.
    #[error("layer rejected: entry {entry:?} {reason}")]
    Rejected { entry: String, reason: String },

    /// A file system call on an entry failed.
    #[error("failed to {action} entry {entry:?}: {source}")]
    Entry {
        entry: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// Reading or decompressing the layer stream failed.
    #[error("failed to read the layer stream: {0}")]
    Read(#[source] io::Error),

    /// The destination directory could not be opened or prepared.
    #[error("failed to {action} destination {path}: {source}")]
    Destination {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// The destination directory already contains files.
    #[error("destination {0} is not empty: a layer is unpacked into an empty directory")]
    NotEmpty(PathBuf),

    /// A layer media type that is not a supported tar layer type.
    #[error("unsupported layer media type {0:?}: expected an OCI or Docker tar layer (plain, gzip or zstd)")]
    UnknownMediaType(String),
}

impl UnpackError {
    pub(crate) fn rejected(entry: &str, reason: impl Into<String>) -> Self {
        Self::Rejected {
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn entry(entry: &str, action: &'static str, source: impl Into<io::Error>) -> Self {
        Self::Entry {
            entry: entry.to_owned(),
            action,
            source: source.into(),
        }
    }
}
