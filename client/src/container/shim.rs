//! Starting a container's shim and speaking its gRPC task API.
//!
//! hullctl starts one `containerd-shim-hull-v2` per container with the shim
//! protocol's `start` action, in the container's bundle directory and with
//! no events address, so the shim publishes nothing. The shim detaches and
//! prints its ttrpc socket; its gRPC server listens at `<socket>.grpc`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use hull_proto::containerd::task::v3::task_client::TaskClient;
use hull_proto::containerd::task::v3::*;
use tonic::transport::Channel;
use tonic::Code;

use super::record::ShimRecord;

/// The containerd namespace hullctl's shims use; it names the shim's
/// socket and the runtime's cgroup parent.
pub const NAMESPACE: &str = "hullctl";

/// Program name of the shim.
const SHIM_NAME: &str = "containerd-shim-hull-v2";
/// Program name of the runtime.
const RUNTIME_NAME: &str = "hull";

/// Finds `name` next to the running hullctl, then on `PATH`. `variable`
/// overrides both.
pub fn find_program(variable: &str, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{variable}={} is not a file", path.display());
        }
        return Ok(path);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("{name} not found next to hullctl or on PATH: install it or set {variable}")
}

/// The shim binary: `$HULL_SHIM`, next to hullctl, or on `PATH`.
pub fn shim_program() -> anyhow::Result<PathBuf> {
    find_program("HULL_SHIM", SHIM_NAME)
}

/// The OCI runtime: `$HULL_RUNTIME`, `hull` next to hullctl, or on `PATH`.
pub fn runtime_program() -> anyhow::Result<PathBuf> {
    find_program("HULL_RUNTIME", RUNTIME_NAME)
}

/// Starts the shim of container `id` for the bundle at `bundle` and
/// returns its socket and pid.
pub async fn start(id: &str, bundle: &Path) -> anyhow::Result<(ShimRecord, Shim)> {
    let program = shim_program()?;
    let output = tokio::process::Command::new(&program)
        .args(["-namespace", NAMESPACE, "-id", id, "-address", "/dev/null"])
        .arg("start")
        .current_dir(bundle)
        .env_remove("TTRPC_ADDRESS")
        .env_remove("GRPC_ADDRESS")
        .env_remove("MAX_SHIM_VERSION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .with_context(|| format!("failed to run {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "failed to start the shim {} for container {id}: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let address = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let socket = address
        .strip_prefix("unix://")
        .ok_or_else(|| anyhow!("the shim printed {address:?}, expected a unix:// address"))?
        .to_owned();
    // The shim's pid comes from the Connect call, since `start` prints only
    // the address.
    let mut record = ShimRecord { socket, pid: 0 };
    let shim = Shim::connect(id, &record).await?;
    let connected = shim
        .client()
        .connect(ConnectRequest { id: id.to_owned() })
        .await
        .map_err(|status| task_error("connect to the shim of", id, status))?;
    record.pid = connected.into_inner().shim_pid;
    Ok((record, shim))
}

/// A gRPC connection to one container's shim.
#[derive(Clone)]
pub struct Shim {
    client: TaskClient<Channel>,
    id: String,
}

impl Shim {
    /// Connects to the shim of `record`, retrying while its socket appears.
    pub async fn connect(id: &str, record: &ShimRecord) -> anyhow::Result<Shim> {
        let address = format!("{}.grpc", record.socket);
        let mut last_error = None;
        for _ in 0..100 {
            match hull_proto::grpc::connect_unix(&address).await {
                Ok(channel) => {
                    return Ok(Shim {
                        client: TaskClient::new(channel),
                        id: id.to_owned(),
                    })
                }
                Err(err) => {
                    if record.pid != 0 && !is_alive(record.pid) {
                        bail!(
                            "the shim of container {id} (pid {}) is not running",
                            record.pid
                        );
                    }
                    last_error = Some(err);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(anyhow!(
            "failed to connect to the shim of container {id} at {address}: {}",
            last_error.map(|err| err.to_string()).unwrap_or_default()
        ))
    }

    /// Connects once, without retrying: for status queries of shims that
    /// may be gone.
    pub async fn try_connect(id: &str, record: &ShimRecord) -> Option<Shim> {
        if !is_alive(record.pid) {
            return None;
        }
        let address = format!("{}.grpc", record.socket);
        let channel = tokio::time::timeout(
            Duration::from_secs(2),
            hull_proto::grpc::connect_unix(&address),
        )
        .await
        .ok()?
        .ok()?;
        Some(Shim {
            client: TaskClient::new(channel),
            id: id.to_owned(),
        })
    }

    pub fn client(&self) -> TaskClient<Channel> {
        self.client.clone()
    }

    pub async fn create(&self, request: CreateTaskRequest) -> Result<u32, tonic::Status> {
        let response = self.client.clone().create(request).await?;
        Ok(response.into_inner().pid)
    }

    pub async fn start(&self, exec_id: &str) -> Result<u32, tonic::Status> {
        let response = self
            .client
            .clone()
            .start(StartRequest {
                id: self.id.clone(),
                exec_id: exec_id.to_owned(),
            })
            .await?;
        Ok(response.into_inner().pid)
    }

    pub async fn state(&self, exec_id: &str) -> Result<StateResponse, tonic::Status> {
        let response = self
            .client
            .clone()
            .state(StateRequest {
                id: self.id.clone(),
                exec_id: exec_id.to_owned(),
            })
            .await?;
        Ok(response.into_inner())
    }

    pub async fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<(), tonic::Status> {
        self.client
            .clone()
            .kill(KillRequest {
                id: self.id.clone(),
                exec_id: exec_id.to_owned(),
                signal,
                all,
            })
            .await?;
        Ok(())
    }

    /// Waits for the process to exit and returns its exit status.
    pub async fn wait(&self, exec_id: &str) -> Result<u32, tonic::Status> {
        let response = self
            .client
            .clone()
            .wait(WaitRequest {
                id: self.id.clone(),
                exec_id: exec_id.to_owned(),
            })
            .await?;
        Ok(response.into_inner().exit_status)
    }

    /// Deletes the task or exec; a task already deleted is not an error.
    pub async fn delete(&self, exec_id: &str) -> Result<(), tonic::Status> {
        let deleted = self
            .client
            .clone()
            .delete(DeleteRequest {
                id: self.id.clone(),
                exec_id: exec_id.to_owned(),
            })
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(status),
        }
    }

    /// Asks the shim to exit once it has no tasks.
    pub async fn shutdown(&self) {
        let _ = self
            .client
            .clone()
            .shutdown(ShutdownRequest {
                id: self.id.clone(),
                now: false,
            })
            .await;
    }
}

/// Returns true while process `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may
    // contain spaces or parentheses itself.
    match stat.rfind(')') {
        Some(end) => !matches!(stat[end + 1..].trim_start().chars().next(), Some('Z' | 'X')),
        None => false,
    }
}

/// Returns true when `pid` runs the shim of container `id`, so that a
/// recycled pid is never signalled.
pub fn is_shim_of(pid: u32, id: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
    let is_shim = args
        .first()
        .is_some_and(|arg0| arg0.ends_with(SHIM_NAME.as_bytes()));
    let has = |flag: &[u8], value: &[u8]| {
        args.windows(2)
            .any(|pair| pair[0] == flag && pair[1] == value)
    };
    is_shim && has(b"-id", id.as_bytes()) && has(b"-namespace", NAMESPACE.as_bytes())
}

/// Returns the pids of the shims of container `id` that run in hullctl's
/// namespace, found through /proc: a crash between starting a shim and
/// recording it leaves one that only this finds.
pub fn find_shims(id: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_shim_of(*pid, id))
        .collect()
}

/// Kills shim `pid` with SIGKILL and waits up to a second for it to be
/// gone.
pub async fn kill_and_wait(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), gone(pid)).await;
}

/// Returns once process `pid` has exited (a zombie counts as exited). The
/// process need not be a child: a pidfd becomes readable at the exit, and
/// without one the process is checked every 100 ms.
pub async fn gone(pid: u32) {
    let pidfd = rustix::process::Pid::from_raw(pid as i32)
        .map(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK));
    match pidfd {
        Some(Ok(pidfd)) => {
            // SAFETY: the AsyncFd owns the OwnedFd, whose descriptor stays
            // open and the same for as long as the AsyncFd lives.
            let registered = unsafe { tokio::io::unix::AsyncFd::register(pidfd) };
            if let Ok(pidfd) = registered {
                // A pidfd turns readable when the process exits, and stays so.
                let _ = pidfd.readable().await;
                return;
            }
        }
        Some(Err(rustix::io::Errno::SRCH)) | None => return,
        Some(Err(_)) => {}
    }
    while is_alive(pid) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Removes the shim sockets named in the bundle's `address` file when no
/// shim accepts connections on them, as after a shim was killed.
pub fn remove_dead_sockets(bundle: &Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let socket = address.trim().trim_start_matches("unix://").to_owned();
    if socket.is_empty() || std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(format!("{socket}.grpc"));
    let _ = std::fs::remove_file(&socket);
}

/// The runtime options every hullctl task is created with: hull (or
/// `$HULL_RUNTIME`) as the binary and the run root's state directory.
pub fn runtime_options(runtime_root: &Path) -> anyhow::Result<prost_types::Any> {
    let binary = runtime_program()?;
    let options = hull_proto::containerd::runc::v1::Options {
        binary_name: binary.display().to_string(),
        root: runtime_root.display().to_string(),
        ..Default::default()
    };
    Ok(hull_proto::events::to_any(&options))
}

/// Formats a failed task call for the user.
pub fn task_error(action: &str, id: &str, status: tonic::Status) -> anyhow::Error {
    anyhow!("failed to {action} container {id}: {}", status.message())
}
