//! Call status with gRPC status codes, as ttrpc carries it in
//! `google.rpc.Status`.

use std::fmt;

use prost::Message;

use crate::google::rpc;

/// gRPC status code (`google.rpc.Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl From<i32> for Code {
    /// Maps values outside the defined range to [`Code::Unknown`], as gRPC does.
    fn from(value: i32) -> Self {
        match value {
            0 => Self::Ok,
            1 => Self::Cancelled,
            3 => Self::InvalidArgument,
            4 => Self::DeadlineExceeded,
            5 => Self::NotFound,
            6 => Self::AlreadyExists,
            7 => Self::PermissionDenied,
            8 => Self::ResourceExhausted,
            9 => Self::FailedPrecondition,
            10 => Self::Aborted,
            11 => Self::OutOfRange,
            12 => Self::Unimplemented,
            13 => Self::Internal,
            14 => Self::Unavailable,
            15 => Self::DataLoss,
            16 => Self::Unauthenticated,
            _ => Self::Unknown,
        }
    }
}

impl From<Code> for tonic::Code {
    fn from(code: Code) -> Self {
        tonic::Code::from_i32(code as i32)
    }
}

impl From<tonic::Code> for Code {
    fn from(code: tonic::Code) -> Self {
        Code::from(code as i32)
    }
}

/// Outcome of a call that did not succeed, or an OK status.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    code: Code,
    message: String,
    details: Vec<prost_types::Any>,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn with_details(
        code: Code,
        message: impl Into<String>,
        details: Vec<prost_types::Any>,
    ) -> Self {
        Self {
            code,
            message: message.into(),
            details,
        }
    }

    pub fn ok() -> Self {
        Self::new(Code::Ok, "")
    }

    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(Code::Cancelled, message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Self::new(Code::DeadlineExceeded, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, message)
    }

    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }

    pub fn resource_exhausted(message: impl Into<String>) -> Self {
        Self::new(Code::ResourceExhausted, message)
    }

    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(Code::Unimplemented, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> &[prost_types::Any] {
        &self.details
    }

    /// Converts to the `google.rpc.Status` message of a ttrpc response.
    pub fn to_proto(&self) -> rpc::Status {
        rpc::Status {
            code: self.code as i32,
            message: self.message.clone(),
            details: self.details.clone(),
        }
    }

    /// Converts from the `google.rpc.Status` message of a ttrpc response.
    pub fn from_proto(status: rpc::Status) -> Self {
        Self {
            code: Code::from(status.code),
            message: status.message,
            details: status.details,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

impl From<tonic::Status> for Status {
    /// Keeps code and message. tonic carries details as an encoded
    /// `google.rpc.Status`, and its `details` field becomes this status's
    /// details.
    fn from(status: tonic::Status) -> Self {
        let details = if status.details().is_empty() {
            Vec::new()
        } else {
            rpc::Status::decode(status.details())
                .map(|decoded| decoded.details)
                .unwrap_or_default()
        };
        Self {
            code: Code::from(status.code()),
            message: status.message().to_owned(),
            details,
        }
    }
}

impl From<Status> for tonic::Status {
    /// Encodes non-empty details as a `google.rpc.Status`, the layout that
    /// tonic-types and grpc-go read from the `grpc-status-details-bin` trailer.
    fn from(status: Status) -> Self {
        if status.details.is_empty() {
            return tonic::Status::new(status.code.into(), status.message);
        }
        let encoded = status.to_proto().encode_to_vec();
        tonic::Status::with_details(status.code.into(), status.message, encoded.into())
    }
}
