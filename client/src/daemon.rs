//! Connecting to hull-imaged, and starting it when its socket is absent.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::GlobalArgs;

/// Time a started daemon gets to report SERVING on its health service.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the daemon's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 10;

/// Connects to the daemon at `--address`, starting `hull-imaged` first
/// when nothing listens there.
pub async fn connect_or_start(global: &GlobalArgs) -> anyhow::Result<Channel> {
    let address = global.address.to_string_lossy().into_owned();
    match hull_proto::grpc::connect_unix(&address).await {
        Ok(channel) => return Ok(channel),
        Err(err) => {
            if !is_absent(&global.address) {
                bail!(
                    "failed to connect to hull-imaged at {address}: {}",
                    error_chain(&err)
                );
            }
        }
    }
    start_daemon(global).await
}

/// True when nothing can listen at `path`: no file, or a socket that
/// refuses connections.
fn is_absent(path: &Path) -> bool {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => false,
        Err(err) => matches!(
            err.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        ),
    }
}

/// Returns `hull-imaged` next to this executable, else the name for a
/// `PATH` lookup.
fn daemon_binary() -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        let candidate = dir.join("hull-imaged");
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("hull-imaged")
}

async fn start_daemon(global: &GlobalArgs) -> anyhow::Result<Channel> {
    std::fs::create_dir_all(&global.root)
        .with_context(|| format!("failed to create root directory {}", global.root.display()))?;
    let log_path = global.root.join("imaged.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("failed to open daemon log {}", log_path.display()))?;
    let log_start = log.metadata().map(|meta| meta.len()).unwrap_or(0);

    let binary = daemon_binary();
    let mut command = Command::new(&binary);
    command
        .arg("--root")
        .arg(&global.root)
        .arg("--address")
        .arg(&global.address);
    for host in &global.insecure_registries {
        command.arg("--insecure-registry").arg(host);
    }
    if let Some(auth_file) = &global.auth_file {
        command.arg("--auth-file").arg(auth_file);
    }
    command
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .context("failed to duplicate the log file")?,
        )
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the
    // parent; it runs in the forked child before exec.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start {}", binary.display()))?;

    let address = global.address.to_string_lossy().into_owned();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("failed to wait for hull-imaged")? {
            bail!(
                "hull-imaged exited with {status} while starting; the end of {}:\n{}",
                log_path.display(),
                log_tail(&log_path, log_start)
            );
        }
        if let Ok(channel) = hull_proto::grpc::connect_unix(&address).await {
            if is_serving(channel.clone()).await {
                // The daemon runs in its own session and outlives hullctl, which does not reap it.
                drop(child);
                return Ok(channel);
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "hull-imaged (pid {}) did not respond on {address} within {} s; the end of {}:\n{}",
                child.id(),
                START_TIMEOUT.as_secs(),
                log_path.display(),
                log_tail(&log_path, log_start)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn is_serving(channel: Channel) -> bool {
    let mut health = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match health.check(request).await {
        Ok(response) => response.into_inner().status == ServingStatus::Serving as i32,
        Err(_) => false,
    }
}

/// Returns the last lines that the daemon wrote to `path` after `offset`.
fn log_tail(path: &Path, offset: u64) -> String {
    use std::io::{Seek, SeekFrom};

    let Ok(mut file) = std::fs::File::open(path) else {
        return String::from("(no log)");
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return String::from("(no log)");
    }
    let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n")
}

/// Formats an error with its sources, which tonic's transport errors need
/// to say what failed.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
