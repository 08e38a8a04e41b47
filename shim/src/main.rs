//! `containerd-shim-hull-v2`: containerd's runtime v2 shim for hull and
//! other runc-compatible runtimes.
//!
//! Run without an action, the binary is the shim server. It serves the task
//! API over ttrpc, as `containerd.task.v2.Task` and `containerd.task.v3.Task`,
//! on the socket that `start` passed as fd 3 or on `-socket PATH`. It also
//! serves it over gRPC, with reflection and health, on that path plus `.grpc`
//! (fd 4 from `start`), starting the gRPC server on the first gRPC
//! connection.

mod bootstrap;
mod checkpoint;
mod flags;
mod grpc;
mod logger;
mod logging;
mod metrics;
mod mount;
mod oom;
mod options;
mod process;
mod reaper;
mod runtime;
mod service;
mod stdio;
mod task;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hull_proto::containerd::task::{v2, v3};
use hull_proto::events::Publisher;
use prost::Message;

use crate::flags::Flags;
use crate::reaper::Reaper;
use crate::service::Service;
use crate::task::TaskService;

/// Time the servers get to finish the calls in progress after Shutdown.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Time the queued events get to reach containerd before the shim exits.
const EVENT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// `containerd.types.RuntimeInfo` (name and version only), which
/// containerd 2.x reads from `-info`.
#[derive(Clone, PartialEq, prost::Message)]
struct RuntimeInfo {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    version: Option<RuntimeVersion>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RuntimeVersion {
    #[prost(string, tag = "1")]
    version: String,
    #[prost(string, tag = "2")]
    revision: String,
}

fn main() -> ExitCode {
    let flags = match Flags::parse(std::env::args().skip(1)) {
        Ok(flags) => flags,
        Err(error) => {
            eprintln!("containerd-shim-hull-v2: {error}");
            return ExitCode::from(2);
        }
    };
    if flags.version {
        println!("containerd-shim-hull-v2:");
        println!("  Version:  {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if flags.info {
        let info = RuntimeInfo {
            name: "io.containerd.hull.v2".into(),
            version: Some(RuntimeVersion {
                version: env!("CARGO_PKG_VERSION").into(),
                revision: String::new(),
            }),
        };
        use std::io::Write;
        let _ = std::io::stdout().write_all(&info.encode_to_vec());
        return ExitCode::SUCCESS;
    }
    let result = match flags.action.as_deref() {
        Some("start") => bootstrap::start(&flags).map_err(|error| error.to_string()),
        Some("delete") => bootstrap::delete(&flags).map_err(|error| error.to_string()),
        None => serve(&flags),
        Some(other) => Err(format!(
            "unknown action {other:?}: expected start or delete"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("containerd-shim-hull-v2: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the shim server until Shutdown.
fn serve(flags: &Flags) -> Result<(), String> {
    let bundle =
        std::env::current_dir().map_err(|error| format!("no working directory: {error}"))?;
    logging::init(logging::open_log_fifo(&bundle.join("log")), flags.debug);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("failed to start the async runtime: {error}"))?;
    let result = runtime.block_on(serve_async(flags, &bundle));
    if let Err(error) = &result {
        tracing::error!(%error, "shim server failed");
    }
    result
}

async fn serve_async(flags: &Flags, bundle: &Path) -> Result<(), String> {
    let socket_path = match &flags.socket {
        Some(socket) => PathBuf::from(socket.strip_prefix("unix://").unwrap_or(socket)),
        None => {
            let address = std::fs::read_to_string(bundle.join(bootstrap::ADDRESS_FILE))
                .map_err(|error| format!("failed to read the address file: {error}"))?;
            PathBuf::from(address.trim().trim_start_matches("unix://"))
        }
    };
    let grpc_path = bootstrap::grpc_socket_path(&socket_path);
    let (listener, grpc_listener) = match &flags.socket {
        Some(_) => {
            let _ = std::fs::remove_file(&socket_path);
            let _ = std::fs::remove_file(&grpc_path);
            let listener =
                hull_proto::ttrpc::bind(&socket_path).map_err(|error| error.to_string())?;
            let grpc_listener = std::os::unix::net::UnixListener::bind(&grpc_path)
                .map_err(|error| format!("failed to bind {}: {error}", grpc_path.display()))?;
            (listener, grpc_listener)
        }
        None => {
            // SAFETY: `start` passes the listening sockets as fds 3 and 4,
            // and nothing else in this process owns those descriptors.
            let (fd, grpc_fd) = unsafe {
                (
                    OwnedFd::from_raw_fd(bootstrap::TTRPC_LISTENER_FD),
                    OwnedFd::from_raw_fd(bootstrap::GRPC_LISTENER_FD),
                )
            };
            let listener =
                hull_proto::ttrpc::listener_from_fd(fd).map_err(|error| error.to_string())?;
            (listener, std::os::unix::net::UnixListener::from(grpc_fd))
        }
    };
    let grpc_listener = grpc_listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(grpc_listener))
        .map_err(|error| format!("failed to listen on {}: {error}", grpc_path.display()))?;

    let reaper = Reaper::start().map_err(|error| format!("failed to start the reaper: {error}"))?;
    let publisher = std::env::var("TTRPC_ADDRESS")
        .ok()
        .filter(|address| !address.is_empty())
        .map(Publisher::new);
    if publisher.is_none() {
        tracing::warn!("TTRPC_ADDRESS is not set, events are not published");
    }
    let service = Service::new(flags.namespace.clone(), reaper, publisher);
    let task = Arc::new(TaskService(service.clone()));

    let mut ttrpc = hull_proto::ttrpc::Server::new();
    ttrpc
        .register(v3::task_ttrpc::service(task.clone()))
        .and_then(|server| {
            server.register(
                v3::task_ttrpc::service(task.clone()).with_name(v2::task_ttrpc::SERVICE_NAME),
            )
        })
        .map_err(|error| error.to_string())?;
    let token = service.shutdown.clone();
    // SIGTERM and SIGINT stop the servers as Shutdown does, so that the
    // sockets are removed. The containers keep running.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| format!("failed to handle SIGTERM: {error}"))?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|error| format!("failed to handle SIGINT: {error}"))?;
    let signalled = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = signalled.cancelled() => return,
        }
        signalled.cancel();
    });
    let ttrpc_task =
        tokio::spawn(ttrpc.serve_with_shutdown(listener, token.clone().cancelled_owned()));

    let grpc_task = tokio::spawn(grpc::serve_lazily(grpc_listener, task, token.clone()));
    tracing::info!(
        id = flags.id,
        namespace = flags.namespace,
        socket = %socket_path.display(),
        "shim serving"
    );

    token.cancelled().await;
    let stop = async {
        let _ = ttrpc_task.await;
        let _ = grpc_task.await;
    };
    if tokio::time::timeout(SERVER_STOP_TIMEOUT, stop)
        .await
        .is_err()
    {
        tracing::warn!("servers did not stop in time");
    }
    if tokio::time::timeout(EVENT_FLUSH_TIMEOUT, service.flush_events())
        .await
        .is_err()
    {
        tracing::warn!("events still queued at exit are dropped");
    }
    let _ = std::fs::remove_file(&socket_path);
    let _ = std::fs::remove_file(&grpc_path);
    tracing::info!("shim stopped");
    Ok(())
}
