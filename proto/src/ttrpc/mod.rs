//! ttrpc, the framed protobuf RPC protocol that containerd speaks to shims.
//!
//! A connection carries frames ([`frame`]) grouped into streams. A client
//! opens a stream with a request frame on a new odd stream id and the
//! server ends it with a response frame. The request frame contains a
//! `ttrpc.Request` (service, method, encoded message, timeout, metadata) and
//! the response frame a `ttrpc.Response` (a `google.rpc.Status` and the
//! encoded response message). Only unary calls are implemented, which is all
//! the task and event services use.
//!
//! A shim serves the task service like this:
//!
//! ```no_run
//! # async fn example<T: hull_proto::containerd::task::v2::task_server::Task>(
//! #     task: std::sync::Arc<T>,
//! #     fd: std::os::fd::OwnedFd,
//! # ) -> Result<(), hull_proto::ttrpc::ServerError> {
//! use hull_proto::containerd::task::v2::task_ttrpc;
//! use hull_proto::ttrpc::{listener_from_fd, Server};
//!
//! let mut server = Server::new();
//! server.register(task_ttrpc::service(task))?;
//! server.serve(listener_from_fd(fd)?).await
//! # }
//! ```

mod client;
pub mod frame;
mod server;
mod service;
mod status;

pub use client::{CallOptions, Client};
pub use server::{bind, listener_from_fd, Server, ServerError};
pub use service::{Metadata, RequestContext, Service};
pub use status::{Code, Status};

// The generated envelope code names `google.rpc.Status` relative to its
// package, as `super::google::rpc::Status`, so `google` must resolve here.
use crate::google;

/// The `ttrpc.Request` and `ttrpc.Response` envelopes.
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/ttrpc.rs"));
}
