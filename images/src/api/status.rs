//! gRPC status codes for the errors of the store, the registry client and
//! reference parsing. The message is the error's own, which names the
//! failing value and what to do.

use tonic::{Code, Status};

use crate::pull::PullError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::store::StoreError;

pub fn from_reference(err: ReferenceError) -> Status {
    Status::invalid_argument(err.to_string())
}

pub fn from_store(err: StoreError) -> Status {
    let code = match &err {
        StoreError::ImageNotFound(_)
        | StoreError::BlobNotFound(_)
        | StoreError::SnapshotNotFound(_) => Code::NotFound,
        StoreError::InvalidId(_) => Code::InvalidArgument,
        StoreError::RootfsExists(_) | StoreError::AlreadyExists(_) => Code::AlreadyExists,
        StoreError::Locked { .. } => Code::Unavailable,
        StoreError::DigestMismatch { .. }
        | StoreError::SizeMismatch { .. }
        | StoreError::InvalidContent { .. }
        | StoreError::InvalidRecord { .. } => Code::DataLoss,
        StoreError::UnsupportedDigest(_) => Code::Unimplemented,
        _ => Code::Internal,
    };
    Status::new(code, err.to_string())
}

pub fn from_registry(err: RegistryError) -> Status {
    let code = match &err {
        RegistryError::Unauthorized { .. }
        | RegistryError::LoginFailed { .. }
        | RegistryError::Token { .. } => Code::Unauthenticated,
        RegistryError::Denied { .. } => Code::PermissionDenied,
        RegistryError::NotFound { .. } => Code::NotFound,
        RegistryError::InsecureNotAllowed { .. } | RegistryError::Config(_) => {
            Code::FailedPrecondition
        }
        RegistryError::Request { .. } => Code::Unavailable,
        RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. } => Code::DataLoss,
        _ => Code::Internal,
    };
    Status::new(code, error_chain(&err))
}

/// Formats an error with its sources, because reqwest's top-level message
/// leaves out the cause (connection refused, timed out).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

pub fn image_not_found(image: &str) -> Status {
    Status::not_found(format!(
        "image {image:?} is not stored: check the name with hullctl images, or pull it"
    ))
}

pub fn from_pull(err: PullError) -> Status {
    match err {
        PullError::Registry(err) => from_registry(err),
        PullError::Store(err) => from_store(err),
        PullError::NoPlatform { .. } => Status::not_found(err.to_string()),
        PullError::Interrupted(_) => Status::unavailable(err.to_string()),
        PullError::Unpack { .. }
        | PullError::DiffIdMismatch { .. }
        | PullError::InvalidManifest { .. }
        | PullError::Truncated { .. } => Status::data_loss(error_chain(&err)),
        PullError::Task(_) => Status::internal(err.to_string()),
    }
}
