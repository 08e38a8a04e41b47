//! The standard streams of a container's main process: a stdin FIFO for
//! `-i`, and stdout and stderr through the logging program into the
//! json-file log.

use std::path::PathBuf;

use anyhow::Context as _;

use super::record::ContainerRecord;
use super::Context;

/// FIFO in the container's run directory that feeds the process's stdin.
const STDIN_FIFO: &str = "stdin";

/// The stdio URIs of a task.
pub struct TaskStdio {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
}

/// The json-file log of container `id`.
pub fn log_path(ctx: &Context, id: &str) -> PathBuf {
    ctx.store.container_dir(id).join(format!("{id}-json.log"))
}

/// The stdin FIFO of container `id`.
pub fn stdin_path(ctx: &Context, id: &str) -> PathBuf {
    ctx.paths.container_run(id).join(STDIN_FIFO)
}

/// Creates the stdin FIFO when the container keeps stdin open and returns
/// the task's stdio.
pub fn prepare(ctx: &Context, record: &ContainerRecord) -> anyhow::Result<TaskStdio> {
    let run_dir = ctx.paths.container_run(&record.id);
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("failed to create {}", run_dir.display()))?;
    let mut stdin = String::new();
    if record.settings.interactive {
        let path = run_dir.join(STDIN_FIFO);
        let _ = std::fs::remove_file(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .with_context(|| format!("failed to create FIFO {}", path.display()))?;
        stdin = path.display().to_string();
    }
    let uri = format!("file://{}", log_path(ctx, &record.id).display());
    Ok(TaskStdio {
        stdin,
        stdout: uri.clone(),
        stderr: uri,
    })
}

/// Removes the run directory of container `id`.
pub fn release(ctx: &Context, id: &str) {
    let run_dir = ctx.paths.container_run(id);
    if let Err(err) = std::fs::remove_dir_all(&run_dir) {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(container = %id, error = %err, "failed to remove {}", run_dir.display());
        }
    }
}

/// The foreground copy of a container's log to hullctl's stdout and
/// stderr.
pub struct Follower {
    path: PathBuf,
}

/// Starts copying the log of container `id` to hullctl's stdio.
pub fn follow(ctx: &Context, id: &str, _terminal: bool) -> Follower {
    Follower {
        path: log_path(ctx, id),
    }
}

impl Follower {
    /// Copies the rest of the log once the container has exited.
    pub async fn finish(self) {
        if let Ok(bytes) = std::fs::read(&self.path) {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&bytes);
        }
    }
}
