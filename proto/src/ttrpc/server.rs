//! ttrpc server on a unix socket.

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frame::{read_frame, Frame, FrameError, MessageType};
use super::service::{Metadata, RequestContext, Service};
use super::status::Status;
use super::wire;

/// Errors of setting up or running a [`Server`].
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("service {0} is already registered")]
    DuplicateService(String),
    #[error("failed to bind ttrpc socket {path}: {source}")]
    Bind {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to use inherited ttrpc listener fd: {0}")]
    InheritedListener(std::io::Error),
    #[error("failed to accept ttrpc connection: {0}")]
    Accept(std::io::Error),
}

/// Binds a listening unix socket at `path`.
pub fn bind(path: impl AsRef<Path>) -> Result<UnixListener, ServerError> {
    let path = path.as_ref();
    UnixListener::bind(path).map_err(|source| ServerError::Bind {
        path: path.display().to_string(),
        source,
    })
}

/// Turns an inherited listening unix socket into a listener. containerd's
/// shim start-up passes the shim its socket this way (as fd 3).
///
/// Must be called inside a tokio runtime.
pub fn listener_from_fd(fd: OwnedFd) -> Result<UnixListener, ServerError> {
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener
        .set_nonblocking(true)
        .map_err(ServerError::InheritedListener)?;
    UnixListener::from_std(listener).map_err(ServerError::InheritedListener)
}

/// Registry of services and the loop that serves them.
#[derive(Debug, Default)]
pub struct Server {
    services: HashMap<String, Service>,
}

impl Server {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `service` under its name.
    pub fn register(&mut self, service: Service) -> Result<&mut Self, ServerError> {
        if self.services.contains_key(service.name()) {
            return Err(ServerError::DuplicateService(service.name().to_owned()));
        }
        self.services.insert(service.name().to_owned(), service);
        Ok(self)
    }

    /// Serves connections from `listener` until accepting fails.
    pub async fn serve(self, listener: UnixListener) -> Result<(), ServerError> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves connections from `listener` until `signal` completes, then
    /// shuts down gracefully: it stops accepting connections and reading
    /// requests, waits for the calls in progress to send their responses,
    /// and closes the connections.
    ///
    /// Dropping the returned future instead stops at once and cancels the
    /// calls in progress.
    pub async fn serve_with_shutdown<F>(
        self,
        listener: UnixListener,
        signal: F,
    ) -> Result<(), ServerError>
    where
        F: Future<Output = ()>,
    {
        let services = Arc::new(self.services);
        let shutdown = CancellationToken::new();
        let mut connections = JoinSet::new();
        tokio::pin!(signal);

        let result = loop {
            tokio::select! {
                () = &mut signal => break Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(
                            stream,
                            Arc::clone(&services),
                            shutdown.clone(),
                        ));
                    }
                    Err(error) if is_transient_accept_error(&error) => {
                        tracing::warn!(%error, "ttrpc accept failed, retrying");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(error) => break Err(ServerError::Accept(error)),
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        };

        drop(listener);
        shutdown.cancel();
        while connections.join_next().await.is_some() {}
        result
    }
}

fn is_transient_accept_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) || matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Reads frames from one connection and runs each request in its own task.
///
/// The connection ends when the client closes it or on a read error, and
/// then the calls in progress are cancelled. On shutdown the connection
/// rejects new requests with `Unavailable`, lets the calls in progress
/// finish, and then closes.
async fn serve_connection(
    stream: UnixStream,
    services: Arc<HashMap<String, Service>>,
    shutdown: CancellationToken,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (responses, mut outgoing) = mpsc::channel::<Vec<u8>>(64);
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if let Err(error) = writer.write_all(&bytes).await {
                tracing::debug!(%error, "ttrpc connection write failed");
                break;
            }
        }
    });
    // Reading in its own task keeps a partly read frame intact while the
    // loop below waits on other events.
    let (frames, mut incoming) = mpsc::channel(16);
    let reader_task = tokio::spawn(async move {
        loop {
            let result = match read_frame(&mut reader).await {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => break,
                Err(error @ FrameError::Oversized { .. }) => Err(error),
                Err(error) => {
                    tracing::debug!(%error, "ttrpc connection read failed");
                    break;
                }
            };
            if frames.send(result).await.is_err() {
                break;
            }
        }
    });

    let mut calls = JoinSet::new();
    let mut last_stream_id = 0u32;
    let mut draining = false;
    let client_gone = loop {
        if draining && calls.is_empty() {
            break false;
        }
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                continue;
            }
            Some(_) = calls.join_next(), if !calls.is_empty() => continue,
            received = incoming.recv() => received,
        };
        let frame = match received {
            Some(Ok(frame)) => frame,
            Some(Err(FrameError::Oversized { stream_id, length })) => {
                let status = Status::resource_exhausted(format!(
                    "message length {length} exceeds maximum message size of {}",
                    super::frame::MAX_DATA_LEN
                ));
                send_status(&responses, stream_id, status).await;
                continue;
            }
            Some(Err(_)) | None => break true,
        };

        if frame.stream_id % 2 != 1 {
            let status = Status::invalid_argument(format!(
                "stream id {} is even, but client streams must have odd ids",
                frame.stream_id
            ));
            send_status(&responses, frame.stream_id, status).await;
            continue;
        }

        match frame.message_type {
            MessageType::Request if draining => {
                let status = Status::unavailable("ttrpc server is shutting down");
                send_status(&responses, frame.stream_id, status).await;
            }
            MessageType::Request => {
                if frame.stream_id <= last_stream_id {
                    let status = Status::invalid_argument(format!(
                        "stream id {} is not greater than the previous id {last_stream_id}",
                        frame.stream_id
                    ));
                    send_status(&responses, frame.stream_id, status).await;
                    continue;
                }
                last_stream_id = frame.stream_id;
                start_call(&mut calls, &services, &responses, frame).await;
            }
            MessageType::Data => {
                // Every registered method is unary, so no stream takes data.
                let status = Status::invalid_argument(format!(
                    "stream {} does not accept data",
                    frame.stream_id
                ));
                send_status(&responses, frame.stream_id, status).await;
            }
            MessageType::Response | MessageType::Unknown(_) => {
                tracing::warn!(
                    stream_id = frame.stream_id,
                    message_type = ?frame.message_type,
                    "ttrpc server ignored a frame of a type clients do not send"
                );
            }
        }
    };

    if client_gone {
        calls.abort_all();
    }
    while calls.join_next().await.is_some() {}
    reader_task.abort();
    drop(responses);
    let _ = writer_task.await;
}

async fn start_call(
    calls: &mut JoinSet<()>,
    services: &Arc<HashMap<String, Service>>,
    responses: &mpsc::Sender<Vec<u8>>,
    frame: Frame,
) {
    let stream_id = frame.stream_id;
    let request = match wire::Request::decode(frame.data.as_slice()) {
        Ok(request) => request,
        Err(error) => {
            let status = Status::invalid_argument(format!("invalid ttrpc request: {error}"));
            send_status(responses, stream_id, status).await;
            return;
        }
    };

    let handler = services
        .get(&request.service)
        .ok_or_else(|| Status::unimplemented(format!("unknown service {}", request.service)))
        .and_then(|service| {
            service.method(&request.method).cloned().ok_or_else(|| {
                Status::unimplemented(format!(
                    "unknown method {} of service {}",
                    request.method, request.service
                ))
            })
        });
    let handler = match handler {
        Ok(handler) => handler,
        Err(status) => {
            send_status(responses, stream_id, status).await;
            return;
        }
    };

    let timeout = u64::try_from(request.timeout_nano)
        .ok()
        .filter(|nanos| *nanos > 0)
        .map(Duration::from_nanos);
    let context = RequestContext {
        service: request.service,
        method: request.method,
        stream_id,
        metadata: Metadata::from_key_values(request.metadata),
        deadline: timeout.map(|timeout| Instant::now() + timeout),
    };
    let responses = responses.clone();
    calls.spawn(async move {
        let call = handler(context, request.payload);
        let call = async move {
            match timeout {
                Some(timeout) => tokio::time::timeout(timeout, call)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Status::deadline_exceeded(format!(
                            "call did not finish within {timeout:?}"
                        )))
                    }),
                None => call.await,
            }
        };
        // The handler runs in its own task so that a panic becomes an
        // `Internal` status instead of a call that never returns.
        let handle = tokio::spawn(call);
        let _abort = AbortOnDrop(handle.abort_handle());
        let result = match handle.await {
            Ok(result) => result,
            Err(error) if error.is_panic() => {
                tracing::error!(stream_id, "ttrpc handler panicked");
                Err(Status::internal("ttrpc handler panicked"))
            }
            Err(_) => return,
        };
        let response = match result {
            Ok(payload) => wire::Response {
                status: Some(Status::ok().to_proto()),
                payload,
            },
            Err(status) => wire::Response {
                status: Some(status.to_proto()),
                payload: Vec::new(),
            },
        };
        send_response(&responses, stream_id, response).await;
    });
}

/// Aborts a task when the call that waits for it is cancelled.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send_status(responses: &mpsc::Sender<Vec<u8>>, stream_id: u32, status: Status) {
    tracing::debug!(stream_id, %status, "ttrpc request rejected");
    let response = wire::Response {
        status: Some(status.to_proto()),
        payload: Vec::new(),
    };
    send_response(responses, stream_id, response).await;
}

/// Queues a response frame, replacing one that is too large with a
/// `ResourceExhausted` status.
async fn send_response(
    responses: &mpsc::Sender<Vec<u8>>,
    stream_id: u32,
    response: wire::Response,
) {
    let frame = Frame::new(
        stream_id,
        MessageType::Response,
        0,
        response.encode_to_vec(),
    );
    let bytes = match frame.encode() {
        Ok(bytes) => bytes,
        Err(error) => {
            let status = Status::resource_exhausted(error.to_string());
            let fallback = wire::Response {
                status: Some(status.to_proto()),
                payload: Vec::new(),
            };
            let frame = Frame::new(
                stream_id,
                MessageType::Response,
                0,
                fallback.encode_to_vec(),
            );
            match frame.encode() {
                Ok(bytes) => bytes,
                Err(_) => return,
            }
        }
    };
    if responses.send(bytes).await.is_err() {
        tracing::debug!(
            stream_id,
            "ttrpc connection closed before the response was sent"
        );
    }
}
