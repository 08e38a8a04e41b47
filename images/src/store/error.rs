//! Errors of the content store and its metadata database.

use std::path::PathBuf;

use oci_spec::image::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "store {root} is in use by another process (pid {pid}, lock {lock}); stop it or pass another root"
    )]
    Locked {
        root: PathBuf,
        lock: PathBuf,
        pid: String,
    },
    #[error("metadata database {path}: {source}")]
    Database {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("blob {expected} failed verification: its content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("unsupported digest algorithm in {0}: only sha256 is supported")]
    UnsupportedDigest(Digest),
    #[error("blob {0} is already in the store")]
    AlreadyExists(Digest),
    #[error("blob {0} not found in the store")]
    BlobNotFound(Digest),
    #[error("image {0:?} not found in the store")]
    ImageNotFound(String),
    #[error("snapshot of layer {0} not found in the store")]
    SnapshotNotFound(Digest),
    #[error("invalid container id {0:?}: expected [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}")]
    InvalidId(String),
    #[error("rootfs for container {0:?} already exists")]
    RootfsExists(String),
    #[error("invalid {what} {digest}: {reason}")]
    InvalidContent {
        what: &'static str,
        digest: Digest,
        reason: String,
    },
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("invalid metadata record {key:?} in table {table}: {source}")]
    InvalidRecord {
        table: String,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
