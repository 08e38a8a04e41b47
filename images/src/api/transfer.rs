//! Running pulls, pushes and copies in their own tasks and streaming their
//! progress to the client.
//!
//! A transfer keeps running when its client goes away, so that a pull that
//! kubelet gave up on still lands in the store. It ends early only when the
//! daemon stops; the store keeps partial downloads for the next pull.

use std::future::Future;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Daemon;
use crate::pull::Progress;
use hull_proto::hull::images::v1 as pb;

/// Messages buffered for a slow client; progress beyond this is dropped,
/// the final message never is.
const STREAM_BUFFER: usize = 64;

pub type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

/// Converts store progress to the protobuf message.
pub fn progress_message(progress: &Progress) -> pb::LayerProgress {
    pb::LayerProgress {
        id: progress.id.clone(),
        action: super::convert::action(&progress.action) as i32,
        current: progress.current,
        total: progress.total,
    }
}

/// Runs `work` in a task, sending each progress update through `wrap` and
/// its result through `finish`, and returns the response stream.
///
/// `what` names the transfer in logs and in the error sent on shutdown.
pub fn spawn<T, R, W, F, Fut>(
    daemon: &Daemon,
    what: String,
    wrap: W,
    finish: F,
    work: impl FnOnce(mpsc::Sender<Progress>) -> Fut + Send + 'static,
) -> ResponseStream<T>
where
    T: Send + 'static,
    R: Send + 'static,
    W: Fn(pb::LayerProgress) -> T + Send + 'static,
    F: FnOnce(R) -> T + Send + 'static,
    Fut: Future<Output = Result<R, Status>> + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(STREAM_BUFFER);
    let (progress_tx, mut progress_rx) = mpsc::channel::<Progress>(STREAM_BUFFER);
    let mut shutdown = daemon.shutdown();

    tokio::spawn(async move {
        tracing::info!(transfer = %what, "started");
        let work = work(progress_tx);
        tokio::pin!(work);
        let result = loop {
            tokio::select! {
                biased;
                Some(progress) = progress_rx.recv() => {
                    // A full buffer means a slow client: drop the update.
                    let _ = out_tx.try_send(Ok(wrap(progress_message(&progress))));
                }
                result = &mut work => break Some(result),
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break None;
                    }
                }
            }
        };
        while let Ok(progress) = progress_rx.try_recv() {
            let _ = out_tx.try_send(Ok(wrap(progress_message(&progress))));
        }
        let message = match result {
            Some(Ok(value)) => {
                tracing::info!(transfer = %what, "finished");
                Ok(finish(value))
            }
            Some(Err(status)) => {
                tracing::warn!(transfer = %what, error = %status.message(), "failed");
                Err(status)
            }
            None => {
                tracing::warn!(transfer = %what, "cancelled because the daemon is stopping");
                Err(Status::unavailable(format!(
                    "{what} was cancelled because hull-imaged is stopping: run it again to resume"
                )))
            }
        };
        let _ = out_tx.send(message).await;
    });
    ReceiverStream::new(out_rx)
}
