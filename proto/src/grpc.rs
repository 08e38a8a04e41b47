//! gRPC (tonic) helpers: unix socket transport, reflection and health.
//!
//! A shim serves the task service over gRPC with the same trait
//! implementation it registers on ttrpc:
//!
//! ```no_run
//! # async fn example<T: hull_proto::containerd::task::v3::task_server::Task>(
//! #     task: std::sync::Arc<T>,
//! #     listener: tokio::net::UnixListener,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use hull_proto::containerd::task::v3::task_server::TaskServer;
//!
//! let (_health, health_service) = tonic_health::server::health_reporter();
//! tonic::transport::Server::builder()
//!     .add_service(TaskServer::from_arc(task))
//!     .add_service(hull_proto::grpc::reflection_service()?)
//!     .add_service(health_service)
//!     .serve_with_incoming(hull_proto::grpc::unix_incoming(listener))
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Endpoint};
use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};

use crate::events::{NAMESPACE_GRPC_KEY, NAMESPACE_TTRPC_KEY};
use crate::ttrpc::RequestContext;

/// Turns a unix listener into the connection stream that
/// `tonic::transport::Server::serve_with_incoming` takes.
pub fn unix_incoming(listener: UnixListener) -> UnixListenerStream {
    UnixListenerStream::new(listener)
}

/// Opens a gRPC channel to the unix socket at `address`, a path or a
/// `unix://` URI. Generated clients take it, as in `TaskClient::new(channel)`.
pub async fn connect_unix(address: &str) -> Result<Channel, tonic::transport::Error> {
    let path = PathBuf::from(address.strip_prefix("unix://").unwrap_or(address));
    // The URI only fills the HTTP/2 :authority header, and the connector
    // ignores it.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
}

/// Builds the `grpc.reflection.v1` service over every message and service of
/// this crate.
pub fn reflection_service(
) -> Result<ServerReflectionServer<impl ServerReflection>, tonic_reflection::server::Error> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::TASK_FILE_DESCRIPTOR_SET)
        .build_v1()
}

/// Returns the containerd namespace of a request that arrived over gRPC
/// (`containerd-namespace` header) or ttrpc (`containerd-namespace-ttrpc`
/// metadata).
pub fn namespace<T>(request: &tonic::Request<T>) -> Option<String> {
    if let Some(context) = request.extensions().get::<RequestContext>() {
        if let Some(namespace) = context.metadata.get(NAMESPACE_TTRPC_KEY) {
            return Some(namespace.to_owned());
        }
    }
    [NAMESPACE_GRPC_KEY, NAMESPACE_TTRPC_KEY]
        .into_iter()
        .find_map(|key| request.metadata().get(key))
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
