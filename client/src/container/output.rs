//! The standard streams of a container's main process: a stdin FIFO for
//! `-i`, and stdout and stderr through the logging program into the
//! json-file log.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;

use crate::logs::reader::{is_broken_pipe, read_logs, ReadOptions};
use crate::logs::{logger_uri, LogOptions};

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
    crate::logs::log_path(&ctx.store.container_dir(id), id)
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
    let exe = std::env::current_exe().context("failed to find hullctl's own path")?;
    let options = LogOptions {
        max_size: record.settings.log_max_size,
        max_file: record.settings.log_max_files,
    };
    let exit_command = exit_command(ctx, &exe, record);
    let uri = logger_uri(
        &exe,
        &log_path(ctx, &record.id),
        &options,
        Some(&exit_command),
    )?;
    Ok(TaskStdio {
        stdin,
        stdout: uri.clone(),
        stderr: uri,
    })
}

/// The command that the logging program runs once the output ends:
/// `hullctl container-exited ID TOKEN` with this hullctl's directories,
/// since it starts with an empty environment.
fn exit_command(ctx: &Context, exe: &std::path::Path, record: &ContainerRecord) -> Vec<String> {
    let global = &ctx.global;
    let mut command = vec![
        exe.display().to_string(),
        format!("--root={}", global.root.display()),
        format!("--run-root={}", global.run_root.display()),
        format!("--address={}", global.address.display()),
        String::from("container-exited"),
        record.id.clone(),
    ];
    command.extend(record.run_token.clone());
    command
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
/// stderr, from the start of the log.
pub struct Follower {
    exited: Arc<AtomicBool>,
    wake: Option<Arc<OwnedFd>>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts copying the log of container `id` to hullctl's stdout and
/// stderr until [`Follower::finish`].
pub fn follow(ctx: &Context, id: &str) -> Follower {
    let path = log_path(ctx, id);
    let exited = Arc::new(AtomicBool::new(false));
    let seen = exited.clone();
    // Without the eventfd the follower notices the exit within its poll
    // interval instead of at once.
    let wake = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)
        .ok()
        .map(Arc::new);
    let wake_follower = wake.clone();
    let task = tokio::task::spawn_blocking(move || {
        let options = ReadOptions {
            follow: true,
            tail: None,
            since: None,
            until: None,
            timestamps: false,
        };
        // The streams are not locked for the whole copy: hullctl's own
        // messages on stderr would wait for the end of it.
        let wake = wake_follower.as_deref().map(AsFd::as_fd);
        let exited = || seen.load(Ordering::Acquire);
        let copied = read_logs(
            &path,
            &options,
            std::io::stdout(),
            std::io::stderr(),
            exited,
            wake,
        );
        match copied {
            Err(err) if !is_broken_pipe(&err) => {
                eprintln!("hullctl: failed to copy {}: {err:#}", path.display());
            }
            _ => {}
        }
    });
    Follower { exited, wake, task }
}

impl Follower {
    /// Copies the rest of the log and stops. Call it once the logging
    /// program has exited, which the task's Delete waits for: output that
    /// it writes later is not copied.
    pub async fn finish(self) {
        self.exited.store(true, Ordering::Release);
        if let Some(wake) = &self.wake {
            let _ = rustix::io::write(wake.as_fd(), &1u64.to_ne_bytes());
        }
        let _ = self.task.await;
    }
}
