//! Starting, finishing, stopping and killing containers.
//!
//! `start` sets up the network, starts the shim and creates and starts the
//! task. `finish` runs once the process has exited: it collects the exit
//! status, deletes the task, ends the shim and tears down the network. It
//! runs from whichever comes first: the foreground `run`, `stop`, `rm -f`
//! or the exit command that the logging program starts when the output
//! ends, so a container that exits by itself is cleaned up without a
//! daemon. A per-container lock makes it run once.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use hull_proto::containerd::task::v3::CreateTaskRequest;
use hull_proto::containerd::v1::types::Status;
use rustix::fs::{flock, FlockOperation};

use super::create::{mount_rootfs, read_spec, write_spec};
use super::record::{ContainerRecord, RestartPolicy, State};
use super::shim::{self, Shim};
use super::{output, Context};

/// Lock file in the container directory that serialises start, finish and
/// remove.
const LIFECYCLE_LOCK: &str = ".lifecycle.lock";

/// Exit status recorded when the real one is lost, such as after the shim
/// was killed: docker's value for a container whose status is unknown.
const UNKNOWN_EXIT: i32 = 255;

/// A held per-container lock; released on drop.
pub struct LifecycleLock {
    _file: File,
}

/// Takes the lifecycle lock of the container in `dir`; None when the
/// container's directory is gone because another command removed it.
pub fn lock(dir: &Path) -> anyhow::Result<Option<LifecycleLock>> {
    let path = dir.join(LIFECYCLE_LOCK);
    let file = match File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(anyhow!("failed to open {}: {err}", path.display())),
    };
    flock(file.as_fd(), FlockOperation::LockExclusive)
        .with_context(|| format!("failed to lock {}", path.display()))?;
    Ok(Some(LifecycleLock { _file: file }))
}

/// Result of [`start`]: the container's record and shim connection.
pub struct Started {
    pub record: ContainerRecord,
    /// The connection to the shim when this call started the container.
    pub shim: Option<Shim>,
}

/// Starts the container's process. A running container is left as it is.
pub async fn start(ctx: &Context, id: &str) -> anyhow::Result<Started> {
    let dir = ctx.store.container_dir(id);
    let no_such = || anyhow!("no such container: {id}");
    let _lock = lock(&dir)?.ok_or_else(no_such)?;
    let record = ctx.store.read(id)?.ok_or_else(no_such)?;
    match record.state {
        State::Running | State::Paused => return Ok(Started { record, shim: None }),
        State::Created | State::Exited => {}
        State::Creating => bail!(
            "container {} was not fully created: remove it with hullctl rm {}",
            record.name,
            record.name
        ),
        State::Removing => bail!("container {} is being removed", record.name),
    }
    let previous = record.state;
    match start_locked(ctx, &record).await {
        Ok((record, shim)) => Ok(Started {
            record,
            shim: Some(shim),
        }),
        Err(err) => {
            release_task(ctx, id).await;
            ctx.store.update(id, |record| {
                record.state = previous;
                record.shim = None;
                record.pid = None;
                record.network_attachment = None;
            })?;
            Err(err)
        }
    }
}

async fn start_locked(
    ctx: &Context,
    record: &ContainerRecord,
) -> anyhow::Result<(ContainerRecord, Shim)> {
    let id = &record.id;
    let dir = ctx.store.container_dir(id);
    mount_rootfs(&dir, &record.rootfs)?;
    let mut spec = read_spec(&dir)?;
    let token = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let record = &ctx
        .store
        .update(id, |record| record.run_token = Some(token))?;
    let stdio = output::prepare(ctx, record)?;
    // The CNI plugins and the shim's start are both process starts that
    // do not depend on each other: run them together.
    let (attachment, started) = tokio::join!(
        super::network::setup(ctx, record, &mut spec),
        shim::start(id, &dir)
    );
    // Whatever started is recorded before an error returns, so that the
    // caller's cleanup finds it.
    if let Ok((shim_record, _)) = &started {
        ctx.store.update(id, |record| {
            record.shim = Some(shim_record.clone());
        })?;
    }
    let attachment = attachment?;
    let (_, shim) = started?;
    let record = ctx.store.update(id, |record| {
        record.network_attachment = attachment.clone();
        record.stopped_by_user = false;
    })?;
    if record.settings.tty {
        // The process starts with the size of the terminal that starts it,
        // so a program that reads the size before the first resize gets a
        // real one.
        if let Some((width, height)) = super::tty::stdout_size() {
            spec["process"]["consoleSize"] =
                serde_json::json!({ "width": width, "height": height });
        }
    }
    write_spec(&dir, &spec)?;
    let request = CreateTaskRequest {
        id: id.clone(),
        bundle: dir.display().to_string(),
        rootfs: Vec::new(),
        terminal: record.settings.tty,
        stdin: stdio.stdin,
        stdout: stdio.stdout.clone(),
        stderr: stdio.stderr,
        options: Some(shim::runtime_options(&ctx.paths.runtime_root())?),
        ..Default::default()
    };
    let pid = shim
        .create(request)
        .await
        .map_err(|status| shim::task_error("create the task of", &record.name, status))?;
    shim.start("")
        .await
        .map_err(|status| shim::task_error("start", &record.name, status))?;
    let record = ctx.store.update(id, |record| {
        record.state = State::Running;
        record.pid = Some(pid);
        record.exit_code = None;
        record.started_at = Some(super::now());
        record.finished_at = None;
    })?;
    Ok((record, shim))
}

/// Ends the task and shim of a container that failed to start, without
/// touching its record.
async fn release_task(ctx: &Context, id: &str) {
    if let Ok(Some(record)) = ctx.store.read(id) {
        if let Some(shim_record) = &record.shim {
            end_shim(ctx, id, shim_record).await;
        }
    }
    if let Err(err) = super::network::teardown(ctx, id).await {
        tracing::warn!(container = %id, error = %format!("{err:#}"), "failed to tear down the network");
    }
}

/// Deletes the task and asks the shim to exit; when the shim does not
/// answer, deletes the container through the runtime and kills the shim.
async fn end_shim(ctx: &Context, id: &str, shim_record: &super::record::ShimRecord) -> Option<u32> {
    let mut status = None;
    if let Some(shim) = Shim::try_connect(id, shim_record).await {
        if let Ok(state) = shim.state("").await {
            if state.status == Status::Stopped as i32 {
                status = Some(state.exit_status);
            }
        }
        if let Err(err) = shim.delete("").await {
            tracing::warn!(container = %id, error = %err.message(), "failed to delete the task");
        }
        shim.shutdown().await;
    }
    force_delete(ctx, id).await;
    // The shim exits within milliseconds of Shutdown once it has no task.
    let _ = tokio::time::timeout(Duration::from_secs(1), shim::gone(shim_record.pid)).await;
    if shim::is_alive(shim_record.pid) && shim::is_shim_of(shim_record.pid, id) {
        shim::kill_and_wait(shim_record.pid).await;
        // A killed shim leaves its sockets behind.
        let _ = std::fs::remove_file(&shim_record.socket);
        let _ = std::fs::remove_file(format!("{}.grpc", shim_record.socket));
    }
    status
}

/// Deletes the container from the runtime's state, killing what is left of
/// it, for a shim that is gone.
pub async fn force_delete(ctx: &Context, id: &str) {
    // The shim adds the namespace to the root of the runtime options.
    let runtime_root = ctx.paths.runtime_root().join(shim::NAMESPACE);
    if !runtime_root.join(id).exists() {
        return;
    }
    let Ok(runtime) = shim::runtime_program() else {
        return;
    };
    let status = tokio::process::Command::new(runtime)
        .arg("--root")
        .arg(&runtime_root)
        .args(["delete", "--force", id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if !status.is_ok_and(|status| status.success()) {
        tracing::warn!(container = %id, "the runtime failed to delete the container");
    }
}

/// What `finish` did.
pub struct Finished {
    pub record: ContainerRecord,
    /// False when another command had finished the container already.
    pub finished_now: bool,
}

/// Collects the exit of a container whose process has exited, or waits for
/// it when `wait` is set, and releases the task, shim and network.
pub async fn finish(ctx: &Context, id: &str, wait: bool) -> anyhow::Result<Option<Finished>> {
    finish_run(ctx, id, wait, None).await
}

/// Returns true unless `token` names a start other than the record's
/// latest.
fn is_current_run(record: &ContainerRecord, token: Option<&str>) -> bool {
    token.is_none() || record.run_token.as_deref() == token
}

/// [`finish`] of the start with token `token` only, if given: a container
/// started again since then is left alone.
async fn finish_run(
    ctx: &Context,
    id: &str,
    wait: bool,
    token: Option<&str>,
) -> anyhow::Result<Option<Finished>> {
    let dir = ctx.store.container_dir(id);
    if !dir.exists() {
        return Ok(None);
    }
    let exit = if wait {
        match ctx.store.read(id)? {
            Some(record) if !is_current_run(&record, token) => return Ok(None),
            Some(ContainerRecord {
                shim: Some(shim_record),
                ..
            }) => match Shim::try_connect(id, &shim_record).await {
                Some(shim) => shim.wait("").await.ok(),
                None => None,
            },
            Some(_) => None,
            None => return Ok(None),
        }
    } else {
        None
    };
    let Some(_lock) = lock(&dir)? else {
        return Ok(None);
    };
    let Some(record) = ctx.store.read(id)? else {
        return Ok(None);
    };
    if !is_current_run(&record, token) {
        return Ok(None);
    }
    let Some(shim_record) = record.shim.clone() else {
        return Ok(Some(Finished {
            record,
            finished_now: false,
        }));
    };
    // The runtime's delete and the CNI plugins' DEL do not depend on each
    // other.
    let (status, torn_down) = tokio::join!(
        end_shim(ctx, id, &shim_record),
        super::network::teardown(ctx, id)
    );
    let status = status.or(exit);
    if let Err(err) = torn_down {
        tracing::warn!(container = %id, error = %format!("{err:#}"), "failed to tear down the network");
    }
    output::release(ctx, id);
    let record = ctx.store.update(id, |record| {
        record.state = State::Exited;
        record.exit_code = Some(status.map_or(UNKNOWN_EXIT, |status| status as i32));
        record.finished_at = Some(super::now());
        record.shim = None;
        record.pid = None;
        record.network_attachment = None;
        record.attached = None;
    })?;
    Ok(Some(Finished {
        record,
        finished_now: true,
    }))
}

/// The exit command of the logging program: finishes the start with token
/// `token`, then applies `--rm` and the restart policy.
pub async fn exited(ctx: &Context, id: &str, token: Option<&str>) -> anyhow::Result<()> {
    // A hullctl in the foreground finishes the container itself, and needs
    // the record for the exit code.
    if let Some(Some(pid)) = ctx.store.read(id)?.map(|record| record.attached) {
        if is_hullctl(pid) {
            return Ok(());
        }
    }
    let Some(finished) = finish_run(ctx, id, true, token).await? else {
        return Ok(());
    };
    let record = finished.record;
    if record.settings.auto_remove {
        return super::remove::remove(ctx, &record.id, true, true).await;
    }
    if !finished.finished_now || !should_restart(&record) {
        return Ok(());
    }
    // Docker doubles the delay after each failed restart from 100 ms.
    let delay = Duration::from_millis(100u64 << record.restart_count.min(10));
    tokio::time::sleep(delay).await;
    let record = ctx.store.update(id, |record| record.restart_count += 1)?;
    if record.stopped_by_user || record.state != State::Exited {
        return Ok(());
    }
    start(ctx, id).await.map(|_| ())
}

/// Returns true while `pid` is a running hullctl.
fn is_hullctl(pid: u32) -> bool {
    if !shim::is_alive(pid) {
        return false;
    }
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|exe| std::env::current_exe().ok().map(|own| exe == own))
        .unwrap_or(false)
}

/// Waits for the exit of process `exec_id` through `shim`, and gives up
/// with None when the shim process `shim_pid` is gone, which a request to
/// it might not notice.
pub async fn wait_exit(shim: &Shim, shim_pid: u32, exec_id: &str) -> Option<u32> {
    tokio::select! {
        biased;
        status = shim.wait(exec_id) => status.ok(),
        () = shim::gone(shim_pid) => None,
    }
}

fn should_restart(record: &ContainerRecord) -> bool {
    match record.settings.restart {
        RestartPolicy::No => false,
        RestartPolicy::OnFailure { max_retries } => {
            !record.stopped_by_user
                && record.exit_code.is_some_and(|code| code != 0)
                && (max_retries == 0 || record.restart_count < max_retries)
        }
    }
}

/// Sends the stop signal, waits `timeout` for the exit, then kills the
/// container. A container that is not running is left as it is.
pub async fn stop(ctx: &Context, id: &str, timeout: Option<u32>) -> anyhow::Result<()> {
    let record = ctx
        .store
        .update(id, |record| record.stopped_by_user = true)?;
    let Some(shim_record) = record.shim.clone() else {
        return Ok(());
    };
    let timeout = Duration::from_secs(u64::from(timeout.unwrap_or(record.settings.stop_timeout)));
    if let Some(shim) = Shim::try_connect(id, &shim_record).await {
        let signal =
            super::signal::parse(&record.settings.stop_signal).unwrap_or(libc::SIGTERM as u32);
        if let Ok(state) = shim.state("").await {
            if state.status == Status::Paused as i32 {
                // A frozen process cannot handle its stop signal.
                let _ = shim
                    .client()
                    .resume(hull_proto::containerd::task::v3::ResumeRequest { id: id.to_owned() })
                    .await;
            }
        }
        let signalled = shim.kill("", signal, false).await;
        let exited = match signalled {
            Ok(()) => tokio::time::timeout(timeout, shim.wait("")).await.is_ok(),
            Err(_) => false,
        };
        if !exited {
            let _ = shim.kill("", libc::SIGKILL as u32, true).await;
            let _ = tokio::time::timeout(Duration::from_secs(10), shim.wait("")).await;
        }
    }
    finish(ctx, id, false).await?;
    Ok(())
}

/// Sends `signal` to the container's process.
pub async fn kill(ctx: &Context, record: &ContainerRecord, signal: u32) -> anyhow::Result<()> {
    let not_running = || anyhow!("cannot kill container {}: it is not running", record.name);
    let shim_record = record.shim.clone().ok_or_else(not_running)?;
    let shim = Shim::try_connect(&record.id, &shim_record)
        .await
        .ok_or_else(not_running)?;
    if signal == libc::SIGKILL as u32 || signal == libc::SIGTERM as u32 {
        ctx.store
            .update(&record.id, |record| record.stopped_by_user = true)?;
    }
    shim.kill("", signal, false)
        .await
        .map_err(|status| shim::task_error("kill", &record.name, status))
}

/// The live state of a container: the record, corrected by its shim's
/// answer when the record says it runs.
pub async fn live_state(record: &ContainerRecord) -> (State, Option<i32>) {
    if !matches!(record.state, State::Running | State::Paused) {
        return (record.state, record.exit_code);
    }
    let Some(shim_record) = &record.shim else {
        return (State::Exited, Some(UNKNOWN_EXIT));
    };
    let Some(shim) = Shim::try_connect(&record.id, shim_record).await else {
        return (State::Exited, Some(UNKNOWN_EXIT));
    };
    match shim.state("").await {
        Ok(state) if state.status == Status::Stopped as i32 => {
            (State::Exited, Some(state.exit_status as i32))
        }
        Ok(state) if state.status == Status::Paused as i32 => (State::Paused, None),
        Ok(_) => (State::Running, None),
        Err(_) => (State::Exited, Some(UNKNOWN_EXIT)),
    }
}

/// Waits until the container exits and returns its exit code.
pub async fn wait(ctx: &Context, id: &str) -> anyhow::Result<i32> {
    loop {
        let record = ctx
            .store
            .read(id)?
            .ok_or_else(|| anyhow!("no such container: {id}"))?;
        match (&record.state, &record.shim) {
            (State::Exited, _) => return Ok(record.exit_code.unwrap_or(UNKNOWN_EXIT)),
            (State::Running | State::Paused, Some(shim_record)) => {
                if let Some(shim) = Shim::try_connect(id, shim_record).await {
                    if let Ok(status) = shim.wait("").await {
                        return Ok(status as i32);
                    }
                }
                if let Some(finished) = finish(ctx, id, false).await? {
                    return Ok(finished.record.exit_code.unwrap_or(UNKNOWN_EXIT));
                }
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Freezes (`pause`) or thaws the container's processes.
pub async fn pause(ctx: &Context, id: &str, pause: bool) -> anyhow::Result<()> {
    use hull_proto::containerd::task::v3::{PauseRequest, ResumeRequest};
    let record = ctx
        .store
        .read(id)?
        .ok_or_else(|| anyhow!("no such container: {id}"))?;
    let not_running = || anyhow!("container {} is not running", record.name);
    let shim_record = record.shim.clone().ok_or_else(not_running)?;
    let shim = Shim::try_connect(id, &shim_record)
        .await
        .ok_or_else(not_running)?;
    let mut client = shim.client();
    let result = if pause {
        client
            .pause(PauseRequest { id: id.to_owned() })
            .await
            .map(|_| ())
    } else {
        client
            .resume(ResumeRequest { id: id.to_owned() })
            .await
            .map(|_| ())
    };
    result.map_err(|status| {
        shim::task_error(
            if pause { "pause" } else { "unpause" },
            &record.name,
            status,
        )
    })?;
    ctx.store.update(id, |record| {
        record.state = if pause { State::Paused } else { State::Running };
    })?;
    Ok(())
}
