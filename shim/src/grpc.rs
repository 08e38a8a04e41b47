//! The gRPC server of the task API, with reflection and health.
//!
//! containerd speaks ttrpc only, so most shims never get a gRPC client.
//! The shim therefore binds the socket at startup but builds the tonic
//! server and decodes its reflection descriptors on the first connection.
//! Until then that code does not run and its data is not allocated.

use std::sync::Arc;

use hull_proto::containerd::task::v3;
use tokio::net::UnixListener;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::task::TaskService;

/// Serves gRPC on `listener` from the first connection until `shutdown`.
pub async fn serve_lazily(
    listener: UnixListener,
    task: Arc<TaskService>,
    shutdown: CancellationToken,
) {
    let first = tokio::select! {
        accepted = listener.accept() => accepted,
        _ = shutdown.cancelled() => return,
    };
    let first = match first {
        Ok((stream, _)) => stream,
        Err(error) => {
            tracing::error!(%error, "failed to accept a gRPC connection, gRPC is off");
            return;
        }
    };
    tracing::debug!("first gRPC client, starting the gRPC server");
    let reflection = match hull_proto::grpc::reflection_service() {
        Ok(reflection) => reflection,
        Err(error) => {
            tracing::error!(%error, "failed to build the reflection service, gRPC is off");
            return;
        }
    };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<v3::task_server::TaskServer<TaskService>>()
        .await;
    let incoming = tokio_stream::once(Ok(first)).chain(hull_proto::grpc::unix_incoming(listener));
    let served = tonic::transport::Server::builder()
        .add_service(v3::task_server::TaskServer::from_arc(task))
        .add_service(reflection)
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "gRPC server failed");
    }
}
