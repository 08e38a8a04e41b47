//! Serving both image services, health and reflection on the daemon's
//! socket until a stop signal.

use std::time::Duration;

use hull_proto::hull::images::v1::images_server::ImagesServer;
use hull_proto::runtime::v1::image_service_server::ImageServiceServer;
use tokio::sync::watch;
use tonic_health::ServingStatus;

use super::socket::BoundSocket;
use super::Daemon;

/// Time that running requests get to end after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message accepted or sent: inspect responses carry manifests and
/// configs.
const MAX_MESSAGE_SIZE: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("failed to build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `daemon` on `socket` until `stop` resolves, then signals running
/// transfers to end through `shutdown` and waits up to 10 s for requests
/// to finish.
pub async fn serve(
    daemon: Daemon,
    socket: BoundSocket,
    shutdown: watch::Sender<bool>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    health_reporter.set_serving::<ImagesServer<Daemon>>().await;
    health_reporter
        .set_serving::<ImageServiceServer<Daemon>>()
        .await;

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hull_proto::IMAGES_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(hull_proto::IMAGES_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let images = ImagesServer::new(daemon.clone())
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let cri = ImageServiceServer::new(daemon)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);

    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        stop.await;
        tracing::info!("stopping: cancelling running transfers");
        health_reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let _ = shutdown.send(true);
        let _ = drain_tx.send(());
    };

    let BoundSocket { listener, guard } = socket;
    let path = guard.path().display().to_string();
    let incoming = hull_proto::grpc::unix_incoming(listener);
    tracing::info!(address = %path, "serving");
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(images)
        .add_service(cri)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);

    tokio::select! {
        result = &mut server => result?,
        _ = async {
            let _ = drain_rx.await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => {
            tracing::warn!(timeout_seconds = DRAIN_TIMEOUT.as_secs(), "requests did not end in time, stopping anyway");
        }
    }
    drop(guard);
    tracing::info!(address = %path, "stopped");
    Ok(())
}
