//! The `containerd.task.v3.Task` service, which the shim also serves as
//! `containerd.task.v2.Task`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hull_proto::containerd::events::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskIo, TaskPaused, TaskResumed,
};
use hull_proto::containerd::runc::v1::ProcessDetails;
use hull_proto::containerd::task::v3::task_server::Task;
use hull_proto::containerd::task::v3::*;
use hull_proto::containerd::v1::types::{ProcessInfo, Status};
use hull_proto::events::to_any;
use tokio::sync::watch;
use tonic::{Request, Response, Status as RpcStatus};

use crate::checkpoint::RestoreRequest;
use crate::mount::{mount_rootfs, unmount_all};
use crate::options::ShimOptions;
use crate::process::{Container, Process};
use crate::runtime::Runtime;
use crate::service::{runtime_status, Service, Spawn};
use crate::stdio::StdioPaths;

/// Time Delete waits for a process's output to drain.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The task service: a handle to the shared [`Service`].
#[derive(Clone)]
pub struct TaskService(pub Arc<Service>);

type RpcResult<T> = Result<Response<T>, RpcStatus>;

fn require_id(id: &str) -> Result<(), RpcStatus> {
    if id.is_empty() {
        return Err(RpcStatus::invalid_argument(
            "container id must not be empty",
        ));
    }
    Ok(())
}

/// Time Shutdown waits for the Create, Start and Delete calls in flight.
const IN_FLIGHT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `work` to its end on a task of its own, so that a client that
/// disconnects mid-call, which drops the request's future, leaves no
/// half-made container or process behind. Shutdown waits for it.
async fn to_completion<T: Send + 'static>(
    service: &Service,
    work: impl std::future::Future<Output = Result<T, RpcStatus>> + Send + 'static,
) -> Result<T, RpcStatus> {
    service.in_flight.send_modify(|count| *count += 1);
    let task = tokio::spawn(work);
    let in_flight = service.in_flight.clone();
    // The count drops when the work ends, also after the caller is gone.
    let result = tokio::spawn(async move {
        let result = task.await;
        in_flight.send_modify(|count| *count -= 1);
        result
    });
    match result.await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) | Err(error) => {
            Err(RpcStatus::internal(format!("the request failed: {error}")))
        }
    }
}

impl TaskService {
    async fn create_container(&self, request: CreateTaskRequest) -> Result<u32, RpcStatus> {
        let service = &self.0;
        require_id(&request.id)?;
        if service.container(&request.id).is_ok() {
            return Err(RpcStatus::already_exists(format!(
                "container {} already exists",
                request.id
            )));
        }
        let bundle = std::path::PathBuf::from(&request.bundle);
        let options = ShimOptions::from_any(request.options.as_ref())
            .map_err(|error| RpcStatus::invalid_argument(error.to_string()))?;
        let restore = RestoreRequest::new(&request.checkpoint, &options.criu_work_path);
        options
            .save(&bundle)
            .map_err(|error| RpcStatus::internal(error.to_string()))?;
        let rootfs = bundle.join("rootfs");
        mount_rootfs(&request.rootfs, &rootfs)
            .map_err(|error| RpcStatus::internal(error.to_string()))?;
        let runtime = Runtime::new(
            options.runtime_binary(),
            options.runtime_root(&service.namespace),
            bundle.join("log.json"),
            options.systemd_cgroup,
            service.reaper.clone(),
        );
        let stdio = StdioPaths {
            stdin: request.stdin.clone(),
            stdout: request.stdout.clone(),
            stderr: request.stderr.clone(),
            terminal: request.terminal,
        };
        let container = Arc::new(Container {
            id: request.id.clone(),
            bundle: bundle.clone(),
            rootfs_mounted: !request.rootfs.is_empty(),
            options,
            runtime,
            init: Arc::new(Process::new(&request.id, "", stdio, Vec::new())),
            execs: Default::default(),
            lifecycle: Default::default(),
            running_execs: watch::Sender::new(0),
            deleted: Default::default(),
            restore: Mutex::new(restore),
        });
        // A container created from a checkpoint has no process until Start
        // restores it, and its pid is 0 until then.
        let mut pid = 0;
        if !container.restore_pending() {
            let spawned = service
                .spawn_process(
                    &container,
                    &container.init,
                    &bundle.join("init.pid"),
                    Spawn::Create,
                )
                .await;
            let io;
            (pid, io) = match spawned {
                Ok(spawned) => spawned,
                Err(status) => {
                    if container.rootfs_mounted {
                        if let Err(error) = unmount_all(&rootfs) {
                            tracing::warn!(%error, "failed to unmount the rootfs");
                        }
                    }
                    return Err(status);
                }
            };
            *container.init.io.lock().await = io;
            container.init.set_pid(pid);
        }
        service
            .containers
            .lock()
            .expect("container table lock poisoned")
            .insert(request.id.clone(), container.clone());
        service.publish(&TaskCreate {
            container_id: request.id.clone(),
            bundle: request.bundle.clone(),
            rootfs: request.rootfs.clone(),
            io: Some(TaskIo {
                stdin: request.stdin,
                stdout: request.stdout,
                stderr: request.stderr,
                terminal: request.terminal,
            }),
            checkpoint: request.checkpoint,
            pid,
        });
        if !container.restore_pending() {
            service.watch_exit(container.clone(), container.init.clone());
            service.watch_oom(&container);
        }
        tracing::info!(container = request.id, pid, binary = %container.runtime.binary.display(), "container created");
        Ok(pid)
    }

    async fn delete_process(&self, request: &DeleteRequest) -> Result<DeleteResponse, RpcStatus> {
        let service = &self.0;
        let container = service.container(&request.id)?;
        let process = service.process(&request.id, &request.exec_id)?;
        let is_init = request.exec_id.is_empty();
        match process.status() {
            Status::Stopped => {}
            Status::Created if is_init && !container.restore_pending() => {
                // The init process still waits for start, and the runtime's
                // delete kills it.
                container
                    .runtime
                    .delete(&container.id, true)
                    .await
                    .map_err(runtime_status)?;
                let _ = tokio::time::timeout(Duration::from_secs(5), process.wait()).await;
            }
            Status::Created => {}
            status => {
                return Err(RpcStatus::failed_precondition(format!(
                    "cannot delete process {} of container {}: it is {status:?}",
                    process.id(),
                    container.id
                )))
            }
        }
        let mut rootfs_mounted = is_init && container.rootfs_mounted;
        if is_init && process.exit().is_some() {
            // The rootfs is unmounted beside the runtime's delete, which
            // saves the time of the unmount's sync of the upper layer's
            // file system, unless poststop hooks, which that delete runs,
            // may still read the rootfs.
            let unmount = (rootfs_mounted && !has_poststop_hooks(&container.bundle)).then(|| {
                let rootfs = container.bundle.join("rootfs");
                tokio::task::spawn_blocking(move || unmount_all(&rootfs))
            });
            if let Err(error) = container.runtime.delete(&container.id, true).await {
                tracing::warn!(%error, container = container.id, "runtime delete failed");
            }
            if let Some(unmount) = unmount {
                rootfs_mounted = false;
                match unmount.await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, container = container.id, "failed to unmount the rootfs")
                    }
                    Err(error) => {
                        tracing::warn!(%error, container = container.id, "failed to unmount the rootfs: the unmount task ended")
                    }
                }
            }
        }
        {
            let mut io = process.io.lock().await;
            let drained = tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, io.wait_output()).await;
            if drained.is_err() {
                tracing::warn!(process = process.id(), "output copy did not finish");
                io.stop_logger().await;
            }
            io.close_stdin();
        }
        let exit = process.exit();
        let response = DeleteResponse {
            pid: process.pid(),
            exit_status: exit.map_or(0, |exit| exit.status),
            exited_at: exit.map(|exit| exit.timestamp()),
        };
        if is_init {
            if rootfs_mounted {
                if let Err(error) = unmount_all(&container.bundle.join("rootfs")) {
                    tracing::warn!(%error, "failed to unmount the rootfs");
                }
            }
            service
                .containers
                .lock()
                .expect("container table lock poisoned")
                .remove(&container.id);
            container.deleted.cancel();
            service.publish(&TaskDelete {
                container_id: container.id.clone(),
                pid: response.pid,
                exit_status: response.exit_status,
                exited_at: response.exited_at,
                id: container.id.clone(),
            });
        } else {
            container
                .execs
                .lock()
                .expect("exec table lock poisoned")
                .remove(&request.exec_id);
        }
        Ok(response)
    }
}

#[tonic::async_trait]
impl Task for TaskService {
    async fn state(&self, request: Request<StateRequest>) -> RpcResult<StateResponse> {
        let request = request.into_inner();
        let container = self.0.container(&request.id)?;
        let process = self.0.process(&request.id, &request.exec_id)?;
        let exit = process.exit();
        Ok(Response::new(StateResponse {
            id: process.id().to_owned(),
            bundle: container.bundle.display().to_string(),
            pid: process.pid(),
            status: process.status() as i32,
            stdin: process.stdio.stdin.clone(),
            stdout: process.stdio.stdout.clone(),
            stderr: process.stdio.stderr.clone(),
            terminal: process.stdio.terminal,
            exit_status: exit.map_or(0, |exit| exit.status),
            exited_at: exit.map(|exit| exit.timestamp()),
            exec_id: request.exec_id,
        }))
    }

    async fn create(&self, request: Request<CreateTaskRequest>) -> RpcResult<CreateTaskResponse> {
        let task = self.clone();
        let request = request.into_inner();
        let pid =
            to_completion(&self.0, async move { task.create_container(request).await }).await?;
        Ok(Response::new(CreateTaskResponse { pid }))
    }

    async fn start(&self, request: Request<StartRequest>) -> RpcResult<StartResponse> {
        let request = request.into_inner();
        let container = self.0.container(&request.id)?;
        let service = self.0.clone();
        let pid = to_completion(&self.0, async move {
            if request.exec_id.is_empty() {
                service.start_init(&container).await
            } else {
                let process = service.process(&request.id, &request.exec_id)?;
                service.start_exec(&container, &process).await
            }
        })
        .await?;
        Ok(Response::new(StartResponse { pid }))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> RpcResult<DeleteResponse> {
        let task = self.clone();
        let request = request.into_inner();
        let response =
            to_completion(&self.0, async move { task.delete_process(&request).await }).await?;
        Ok(Response::new(response))
    }

    async fn pids(&self, request: Request<PidsRequest>) -> RpcResult<PidsResponse> {
        let container = self.0.container(&request.get_ref().id)?;
        let pids = container
            .runtime
            .ps(&container.id)
            .await
            .map_err(runtime_status)?;
        let exec_pids = container.exec_pids();
        let processes = pids
            .into_iter()
            .map(|pid| ProcessInfo {
                pid,
                info: exec_pids.get(&pid).map(|exec_id| {
                    to_any(&ProcessDetails {
                        exec_id: exec_id.clone(),
                    })
                }),
            })
            .collect();
        Ok(Response::new(PidsResponse { processes }))
    }

    async fn pause(&self, request: Request<PauseRequest>) -> RpcResult<()> {
        let container = self.0.container(&request.get_ref().id)?;
        container
            .runtime
            .pause(&container.id)
            .await
            .map_err(runtime_status)?;
        container.init.set_status(Status::Paused);
        self.0.publish(&TaskPaused {
            container_id: container.id.clone(),
        });
        Ok(Response::new(()))
    }

    async fn resume(&self, request: Request<ResumeRequest>) -> RpcResult<()> {
        let container = self.0.container(&request.get_ref().id)?;
        container
            .runtime
            .resume(&container.id)
            .await
            .map_err(runtime_status)?;
        container.init.set_status(Status::Running);
        self.0.publish(&TaskResumed {
            container_id: container.id.clone(),
        });
        Ok(Response::new(()))
    }

    async fn checkpoint(&self, request: Request<CheckpointTaskRequest>) -> RpcResult<()> {
        let request = request.into_inner();
        let container = self.0.container(&request.id)?;
        let path = crate::checkpoint::run(&container, &request).await?;
        self.0.publish(&TaskCheckpointed {
            container_id: container.id.clone(),
            checkpoint: path,
        });
        Ok(Response::new(()))
    }

    async fn kill(&self, request: Request<KillRequest>) -> RpcResult<()> {
        let request = request.into_inner();
        let container = self.0.container(&request.id)?;
        let process = self.0.process(&request.id, &request.exec_id)?;
        if process.status() == Status::Stopped {
            return Err(RpcStatus::not_found(format!(
                "process {} of container {} has already exited",
                process.id(),
                container.id
            )));
        }
        if request.exec_id.is_empty() {
            container
                .runtime
                .kill(&container.id, request.signal, request.all)
                .await
                .map_err(runtime_status)?;
        } else {
            if process.status() == Status::Created {
                return Err(RpcStatus::failed_precondition(format!(
                    "exec {} of container {} is not started",
                    process.exec_id, container.id
                )));
            }
            let signal =
                nix::sys::signal::Signal::try_from(request.signal as i32).map_err(|_| {
                    RpcStatus::invalid_argument(format!("invalid signal {}", request.signal))
                })?;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(process.pid() as i32), signal)
                .map_err(|errno| {
                    RpcStatus::not_found(format!(
                        "failed to signal exec {}: {errno}",
                        process.exec_id
                    ))
                })?;
        }
        Ok(Response::new(()))
    }

    async fn exec(&self, request: Request<ExecProcessRequest>) -> RpcResult<()> {
        let request = request.into_inner();
        let container = self.0.container(&request.id)?;
        if request.exec_id.is_empty() {
            return Err(RpcStatus::invalid_argument("exec id must not be empty"));
        }
        if container.init.status() == Status::Stopped {
            return Err(RpcStatus::failed_precondition(format!(
                "container {} has stopped",
                container.id
            )));
        }
        let spec = request
            .spec
            .map(|any| any.value)
            .ok_or_else(|| RpcStatus::invalid_argument("exec request has no process spec"))?;
        let stdio = StdioPaths {
            stdin: request.stdin,
            stdout: request.stdout,
            stderr: request.stderr,
            terminal: request.terminal,
        };
        {
            let mut execs = container.execs.lock().expect("exec table lock poisoned");
            if execs.contains_key(&request.exec_id) {
                return Err(RpcStatus::already_exists(format!(
                    "exec {} of container {} already exists",
                    request.exec_id, container.id
                )));
            }
            let process = Process::new(&container.id, &request.exec_id, stdio, spec);
            execs.insert(request.exec_id.clone(), Arc::new(process));
        }
        self.0.publish(&TaskExecAdded {
            container_id: container.id.clone(),
            exec_id: request.exec_id,
        });
        Ok(Response::new(()))
    }

    async fn resize_pty(&self, request: Request<ResizePtyRequest>) -> RpcResult<()> {
        let request = request.into_inner();
        let process = self.0.process(&request.id, &request.exec_id)?;
        let width = u16::try_from(request.width).unwrap_or(u16::MAX);
        let height = u16::try_from(request.height).unwrap_or(u16::MAX);
        process
            .io
            .lock()
            .await
            .resize(width, height)
            .map_err(|error| RpcStatus::failed_precondition(error.to_string()))?;
        Ok(Response::new(()))
    }

    async fn close_io(&self, request: Request<CloseIoRequest>) -> RpcResult<()> {
        let request = request.into_inner();
        let process = self.0.process(&request.id, &request.exec_id)?;
        if request.stdin {
            process.io.lock().await.close_stdin();
        }
        Ok(Response::new(()))
    }

    async fn update(&self, request: Request<UpdateTaskRequest>) -> RpcResult<()> {
        let request = request.into_inner();
        let container = self.0.container(&request.id)?;
        let resources = request
            .resources
            .map(|any| any.value)
            .ok_or_else(|| RpcStatus::invalid_argument("update request has no resources"))?;
        container
            .runtime
            .update(&container.id, &resources)
            .await
            .map_err(runtime_status)?;
        Ok(Response::new(()))
    }

    async fn wait(&self, request: Request<WaitRequest>) -> RpcResult<WaitResponse> {
        let request = request.into_inner();
        let process = self.0.process(&request.id, &request.exec_id)?;
        let exit = process.wait().await;
        Ok(Response::new(WaitResponse {
            exit_status: exit.status,
            exited_at: Some(exit.timestamp()),
        }))
    }

    async fn stats(&self, request: Request<StatsRequest>) -> RpcResult<StatsResponse> {
        let container = self.0.container(&request.get_ref().id)?;
        if container.init.status() == Status::Stopped {
            return Err(RpcStatus::not_found(format!(
                "container {} has stopped",
                container.id
            )));
        }
        let metrics = crate::metrics::collect(container.init.pid() as i32).map_err(|error| {
            RpcStatus::internal(format!("failed to read cgroup statistics: {error}"))
        })?;
        Ok(Response::new(StatsResponse {
            stats: Some(metrics.to_any()),
        }))
    }

    async fn connect(&self, request: Request<ConnectRequest>) -> RpcResult<ConnectResponse> {
        let task_pid = self
            .0
            .container(&request.get_ref().id)
            .map(|container| container.init.pid())
            .unwrap_or(0);
        Ok(Response::new(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn shutdown(&self, request: Request<ShutdownRequest>) -> RpcResult<()> {
        if request.get_ref().now {
            tracing::info!("shutting down now as requested");
            self.0.shutdown.cancel();
            return Ok(Response::new(()));
        }
        // A Create whose client went away still runs, and its container
        // counts.
        let mut in_flight = self.0.in_flight.subscribe();
        if tokio::time::timeout(IN_FLIGHT_TIMEOUT, in_flight.wait_for(|count| *count == 0))
            .await
            .is_err()
        {
            tracing::warn!("Create, Start or Delete still runs after {IN_FLIGHT_TIMEOUT:?}");
        }
        let remaining = self
            .0
            .containers
            .lock()
            .expect("container table lock poisoned")
            .len();
        if remaining == 0 {
            tracing::info!("no container left, shutting down");
            self.0.shutdown.cancel();
        }
        Ok(Response::new(()))
    }
}

/// Returns whether the bundle's config.json lists poststop hooks. An
/// unreadable config counts as having them, which keeps the unmount after
/// the runtime's delete.
fn has_poststop_hooks(bundle: &std::path::Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        hooks: Option<Hooks>,
    }
    #[derive(serde::Deserialize)]
    struct Hooks {
        #[serde(default)]
        poststop: Vec<serde::de::IgnoredAny>,
    }
    let Ok(data) = std::fs::read(bundle.join("config.json")) else {
        return true;
    };
    match serde_json::from_slice::<Config>(&data) {
        Ok(config) => config.hooks.is_some_and(|hooks| !hooks.poststop.is_empty()),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::has_poststop_hooks;

    #[test]
    fn poststop_hook_detection() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        assert!(has_poststop_hooks(dir.path()), "a missing config counts");
        for (text, expected) in [
            (r#"{"ociVersion":"1.0.2"}"#, false),
            (r#"{"hooks":null}"#, false),
            (r#"{"hooks":{"prestart":[{"path":"/bin/true"}]}}"#, false),
            (r#"{"hooks":{"poststop":[]}}"#, false),
            (r#"{"hooks":{"poststop":[{"path":"/bin/true"}]}}"#, true),
            ("not json", true),
        ] {
            std::fs::write(&config, text).unwrap();
            assert_eq!(has_poststop_hooks(dir.path()), expected, "{text}");
        }
    }
}
