//! ttrpc client on a unix socket, for unary calls.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::frame::{read_frame, Frame, FrameError, MessageType};
use super::service::Metadata;
use super::status::Status;
use super::wire;

type PendingCalls =
    Arc<Mutex<Option<HashMap<u32, oneshot::Sender<Result<wire::Response, Status>>>>>>;

/// Options of one call.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// Time to wait for the response. It is sent to the server as the
    /// request's `timeout_nano` and enforced by the client too.
    pub timeout: Option<Duration>,
    pub metadata: Metadata,
}

impl CallOptions {
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            metadata: Metadata::new(),
        }
    }
}

/// A ttrpc connection. Clones share the connection, and calls on it run
/// concurrently.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Encoded frames for the writer task. A frame goes into the channel
    /// whole or not at all, so a cancelled call never leaves half a frame on
    /// the connection.
    outgoing: mpsc::Sender<Vec<u8>>,
    /// Calls waiting for a response by stream id, or `None` once the
    /// connection is closed.
    pending: PendingCalls,
    next_stream_id: AtomicU32,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Client {
    /// Connects to the socket at `address`, a path or a `unix://` URI.
    pub async fn connect(address: &str) -> std::io::Result<Self> {
        let path = address.strip_prefix("unix://").unwrap_or(address);
        let stream = UnixStream::connect(Path::new(path)).await?;
        Ok(Self::new(stream))
    }

    /// Wraps a connected stream. Must be called inside a tokio runtime.
    pub fn new(stream: UnixStream) -> Self {
        let (reader, writer) = stream.into_split();
        let pending: PendingCalls = Arc::new(Mutex::new(Some(HashMap::new())));
        let reader = tokio::spawn(read_responses(reader, Arc::clone(&pending)));
        let (outgoing, frames) = mpsc::channel(64);
        let writer = tokio::spawn(write_requests(writer, frames));
        Self {
            inner: Arc::new(Inner {
                outgoing,
                pending,
                next_stream_id: AtomicU32::new(1),
                reader,
                writer,
            }),
        }
    }

    /// Returns true once the connection has closed. Calls then fail with
    /// `Unavailable`.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.pending).is_none()
    }

    /// Calls `service`/`method` with an encoded request and returns the
    /// encoded response.
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        options: &CallOptions,
    ) -> Result<Vec<u8>, Status> {
        let timeout_nano = options
            .timeout
            .map(|timeout| i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let request = wire::Request {
            service: service.to_owned(),
            method: method.to_owned(),
            payload,
            timeout_nano,
            metadata: options.metadata.to_key_values(),
        };

        // Stream ids are odd and increase by two per call.
        // NOTE: after 2^31 calls the id wraps, and the server rejects ids
        // that do not increase, so such a connection must be replaced.
        let stream_id = self.inner.next_stream_id.fetch_add(2, Ordering::Relaxed);
        let frame = Frame::new(stream_id, MessageType::Request, 0, request.encode_to_vec());
        let bytes = frame
            .encode()
            .map_err(|error| Status::resource_exhausted(error.to_string()))?;

        let (sender, receiver) = oneshot::channel();
        match lock(&self.inner.pending).as_mut() {
            Some(pending) => pending.insert(stream_id, sender),
            None => return Err(closed()),
        };
        let guard = PendingGuard {
            pending: &self.inner.pending,
            stream_id,
        };

        let exchange = async {
            self.inner
                .outgoing
                .send(bytes)
                .await
                .map_err(|_| closed())?;
            receiver.await.map_err(|_| closed())?
        };
        let response = match options.timeout {
            Some(timeout) => tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| {
                    Status::deadline_exceeded(format!(
                        "{service}/{method} timed out after {timeout:?} without a response"
                    ))
                })??,
            None => exchange.await?,
        };
        drop(guard);

        let status = response
            .status
            .map(Status::from_proto)
            .unwrap_or_else(Status::ok);
        if status.code() != super::Code::Ok {
            return Err(status);
        }
        Ok(response.payload)
    }

    /// Calls a unary method with typed messages.
    pub async fn unary<Req, Resp>(
        &self,
        service: &str,
        method: &str,
        request: &Req,
        options: &CallOptions,
    ) -> Result<Resp, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let payload = self
            .call(service, method, request.encode_to_vec(), options)
            .await?;
        Resp::decode(payload.as_slice()).map_err(|error| {
            Status::internal(format!(
                "invalid response payload from {service}/{method}: {error}"
            ))
        })
    }
}

/// Removes a call from the pending table when it ends early (timeout,
/// write error or dropped future).
struct PendingGuard<'a> {
    pending: &'a PendingCalls,
    stream_id: u32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(pending) = lock(self.pending).as_mut() {
            pending.remove(&self.stream_id);
        }
    }
}

fn closed() -> Status {
    Status::unavailable("ttrpc connection closed")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes request frames until the client is dropped or a write fails.
async fn write_requests(mut writer: OwnedWriteHalf, mut frames: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = frames.recv().await {
        if let Err(error) = writer.write_all(&bytes).await {
            tracing::debug!(%error, "ttrpc client connection write failed");
            break;
        }
    }
}

/// Delivers response frames to the waiting calls until the connection ends,
/// then fails every call still waiting with `Unavailable`.
async fn read_responses(mut reader: OwnedReadHalf, pending: PendingCalls) {
    loop {
        let (stream_id, result) = match read_frame(&mut reader).await {
            Ok(Some(frame)) if frame.message_type == MessageType::Response => {
                let result = wire::Response::decode(frame.data.as_slice())
                    .map_err(|error| Status::internal(format!("invalid ttrpc response: {error}")));
                (frame.stream_id, result)
            }
            Ok(Some(frame)) => {
                tracing::warn!(
                    stream_id = frame.stream_id,
                    message_type = ?frame.message_type,
                    "ttrpc client ignored a frame that is not a response"
                );
                continue;
            }
            Err(FrameError::Oversized { stream_id, length }) => {
                let status = Status::resource_exhausted(format!(
                    "response length {length} exceeds maximum message size of {}",
                    super::frame::MAX_DATA_LEN
                ));
                (stream_id, Err(status))
            }
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(%error, "ttrpc client connection read failed");
                break;
            }
        };
        let sender = lock(&pending)
            .as_mut()
            .and_then(|calls| calls.remove(&stream_id));
        match sender {
            Some(sender) => {
                let _ = sender.send(result);
            }
            None => tracing::debug!(stream_id, "ttrpc response for no waiting call"),
        }
    }
    // Dropping the senders wakes every waiting call with `Unavailable`.
    lock(&pending).take();
}
