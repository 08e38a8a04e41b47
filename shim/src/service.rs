//! The shim's task service state and the container lifecycle: creating and
//! starting processes, collecting their exits and publishing events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hull_proto::containerd::events::{TaskExecStarted, TaskExit, TaskOom, TaskStart};
use hull_proto::containerd::types::Envelope;
use hull_proto::containerd::v1::types::Status;
use hull_proto::events::{envelope, Publisher, TaskEvent};
use hull_proto::ttrpc::Code;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tonic::Status as RpcStatus;

use crate::checkpoint::{restore_args, RestoreRequest};
use crate::logger::LoggerEnv;
use crate::oom::MemoryCgroup;
use crate::process::{Container, Process};
use crate::reaper::Reaper;
use crate::runtime::{read_pid_file, ProcessStdio, RuntimeError, SpawnOptions};
use crate::stdio::{attach_console, open_pipes, ConsoleSocket, ProcessIo};

/// Time the init process's exit event waits for the exec processes' exits,
/// which containerd expects first.
const EXEC_EXIT_GRACE: Duration = Duration::from_secs(3);

/// Retries of an event that containerd did not accept because it was
/// unreachable. The n-th retry waits n seconds, as in containerd's shim
/// publisher (`pkg/shim/publisher.go`), which covers about 15 s of
/// containerd restarting.
const PUBLISH_RETRIES: u32 = 5;

/// Time allowed for the runtime to send the pty master after it created
/// the process.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime command that creates a process.
pub enum Spawn<'a> {
    /// `create` of the init process.
    Create,
    /// `restore --detach` of the init process from a checkpoint.
    Restore(&'a RestoreRequest),
    /// `exec --detach` of the process in the given `process.json` file.
    Exec(&'a Path),
}

enum EventMessage {
    Event(Envelope),
    Flush(oneshot::Sender<()>),
}

/// State shared by all task requests.
pub struct Service {
    pub namespace: String,
    pub reaper: Reaper,
    pub containers: Mutex<HashMap<String, Arc<Container>>>,
    events: mpsc::UnboundedSender<EventMessage>,
    /// Cancelled by Shutdown once no container is left.
    pub shutdown: CancellationToken,
    /// Number of Create, Start and Delete calls still running, which
    /// Shutdown waits for.
    pub in_flight: watch::Sender<usize>,
}

impl Service {
    /// Creates the service and starts the task that forwards events to
    /// `publisher` in order. Without a publisher, events are logged only.
    pub fn new(namespace: String, reaper: Reaper, publisher: Option<Publisher>) -> Arc<Service> {
        let (events, mut queue) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                match message {
                    EventMessage::Event(envelope) => {
                        tracing::debug!(topic = envelope.topic, "publishing event");
                        if let Some(publisher) = &publisher {
                            forward_with_retries(publisher, envelope).await;
                        }
                    }
                    EventMessage::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Arc::new(Service {
            namespace,
            reaper,
            containers: Mutex::new(HashMap::new()),
            events,
            shutdown: CancellationToken::new(),
            in_flight: watch::Sender::new(0),
        })
    }

    /// Queues `event` behind the events published before it.
    pub fn publish<E: TaskEvent>(&self, event: &E) {
        let _ = self
            .events
            .send(EventMessage::Event(envelope(&self.namespace, event)));
    }

    /// Waits until every queued event is forwarded.
    pub async fn flush_events(&self) {
        let (done, flushed) = oneshot::channel();
        if self.events.send(EventMessage::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }

    pub fn container(&self, id: &str) -> Result<Arc<Container>, RpcStatus> {
        self.containers
            .lock()
            .expect("container table lock poisoned")
            .get(id)
            .cloned()
            .ok_or_else(|| RpcStatus::not_found(format!("container {id} not found")))
    }

    pub fn process(&self, id: &str, exec_id: &str) -> Result<Arc<Process>, RpcStatus> {
        self.container(id)?.process(exec_id).ok_or_else(|| {
            RpcStatus::not_found(format!("process {exec_id} of container {id} not found"))
        })
    }

    /// Runs the runtime's `create`, `restore` or `exec` for `process` with
    /// its stdio and returns the new process's pid and the shim's side of
    /// its stdio.
    pub async fn spawn_process(
        &self,
        container: &Container,
        process: &Process,
        pid_file: &Path,
        spawn: Spawn<'_>,
    ) -> Result<(u32, ProcessIo), RpcStatus> {
        let _ = std::fs::remove_file(pid_file);
        let console = if process.stdio.terminal {
            Some(ConsoleSocket::bind().map_err(|error| {
                RpcStatus::internal(format!("failed to create console socket: {error}"))
            })?)
        } else {
            None
        };
        let (stdio, mut io) = match console {
            Some(_) => (ProcessStdio::default(), ProcessIo::default()),
            None => {
                let env = LoggerEnv {
                    container_id: &container.id,
                    namespace: &self.namespace,
                };
                open_pipes(&process.stdio, &env, &self.reaper)
                    .await
                    .map_err(|error| {
                        RpcStatus::internal(format!(
                            "failed to open stdio of {}: {error}",
                            process.id()
                        ))
                    })?
            }
        };
        let options = SpawnOptions {
            pid_file,
            console_socket: console.as_ref().map(ConsoleSocket::path),
            no_pivot: container.options.no_pivot_root,
            no_new_keyring: container.options.no_new_keyring,
        };
        let result = match spawn {
            Spawn::Create => {
                container
                    .runtime
                    .create(&container.id, &container.bundle, &options, stdio)
                    .await
            }
            Spawn::Restore(restore) => {
                let args = restore_args(restore, &container.bundle, &options);
                container.runtime.restore(&container.id, args, stdio).await
            }
            Spawn::Exec(file) => {
                container
                    .runtime
                    .exec(&container.id, file, &options, stdio)
                    .await
            }
        };
        result.map_err(runtime_status)?;
        if let Some(console) = console {
            let master = tokio::time::timeout(CONSOLE_TIMEOUT, console.receive_master())
                .await
                .map_err(|_| RpcStatus::deadline_exceeded("the runtime sent no pty master"))?
                .map_err(|error| {
                    RpcStatus::internal(format!("failed to receive the pty master: {error}"))
                })?;
            let env = LoggerEnv {
                container_id: &container.id,
                namespace: &self.namespace,
            };
            io = attach_console(master, &process.stdio, &env, &self.reaper)
                .await
                .map_err(|error| {
                    RpcStatus::internal(format!("failed to attach the terminal: {error}"))
                })?;
        }
        let pid = read_pid_file(pid_file).map_err(|error| {
            RpcStatus::internal(format!(
                "failed to read pid file {}: {error}",
                pid_file.display()
            ))
        })?;
        Ok((pid as u32, io))
    }

    /// Starts the init process (`hull start`, or `hull restore` for a
    /// container created from a checkpoint) and publishes TaskStart.
    pub async fn start_init(
        self: &Arc<Self>,
        container: &Arc<Container>,
    ) -> Result<u32, RpcStatus> {
        let _lifecycle = container.lifecycle.lock().await;
        let init = &container.init;
        match init.status() {
            Status::Created => {}
            status => {
                return Err(RpcStatus::failed_precondition(format!(
                    "container {} is {status:?}, not created",
                    container.id
                )))
            }
        }
        let restore = container
            .restore
            .lock()
            .expect("restore lock poisoned")
            .clone();
        match restore {
            Some(restore) => self.restore_init(container, &restore).await?,
            None => container
                .runtime
                .start(&container.id)
                .await
                .map_err(runtime_status)?,
        }
        init.set_status(Status::Running);
        self.publish(&TaskStart {
            container_id: container.id.clone(),
            pid: init.pid(),
        });
        Ok(init.pid())
    }

    /// Restores the init process from `restore` and watches its exit and
    /// OOM kills, which a created container watches from Create on.
    async fn restore_init(
        self: &Arc<Self>,
        container: &Arc<Container>,
        restore: &RestoreRequest,
    ) -> Result<(), RpcStatus> {
        let init = &container.init;
        let pid_file = container.bundle.join("init.pid");
        let (pid, io) = self
            .spawn_process(container, init, &pid_file, Spawn::Restore(restore))
            .await?;
        *init.io.lock().await = io;
        init.set_pid(pid);
        *container.restore.lock().expect("restore lock poisoned") = None;
        self.watch_exit(container.clone(), init.clone());
        self.watch_oom(container);
        tracing::info!(container = container.id, pid, image = %restore.image.display(), "container restored");
        Ok(())
    }

    /// Starts an exec process (`hull exec --detach`) and publishes
    /// TaskExecStarted.
    pub async fn start_exec(
        self: &Arc<Self>,
        container: &Arc<Container>,
        process: &Arc<Process>,
    ) -> Result<u32, RpcStatus> {
        let _lifecycle = container.lifecycle.lock().await;
        if process.status() != Status::Created {
            return Err(RpcStatus::failed_precondition(format!(
                "exec {} of container {} was already started",
                process.exec_id, container.id
            )));
        }
        if container.init.status() == Status::Stopped {
            return Err(RpcStatus::failed_precondition(format!(
                "container {} has stopped",
                container.id
            )));
        }
        let process_file = exec_file(&container.bundle, &process.exec_id, "json");
        std::fs::write(&process_file, &process.spec).map_err(|error| {
            RpcStatus::internal(format!(
                "failed to write {}: {error}",
                process_file.display()
            ))
        })?;
        let pid_file = exec_file(&container.bundle, &process.exec_id, "pid");
        let spawned = self
            .spawn_process(container, process, &pid_file, Spawn::Exec(&process_file))
            .await;
        let _ = std::fs::remove_file(&process_file);
        // The pid is read by now; the file would stay until the container
        // is deleted, one per exec.
        let _ = std::fs::remove_file(&pid_file);
        let (pid, io) = spawned?;
        *process.io.lock().await = io;
        process.set_pid(pid);
        process.set_status(Status::Running);
        container.running_execs.send_modify(|count| *count += 1);
        self.watch_exit(container.clone(), process.clone());
        self.publish(&TaskExecStarted {
            container_id: container.id.clone(),
            exec_id: process.exec_id.clone(),
            pid,
        });
        Ok(pid)
    }

    /// Collects the exit of `process` from the reaper, records it and
    /// publishes TaskExit. The init process's exit waits for the exec
    /// processes' exits.
    pub fn watch_exit(self: &Arc<Self>, container: Arc<Container>, process: Arc<Process>) {
        let exited = self.reaper.claim(process.pid() as i32);
        let service = self.clone();
        tokio::spawn(async move {
            // A dropped claim means the reaper stopped, so report the process
            // as killed.
            let status = exited.await.unwrap_or(128 + libc::SIGKILL as u32);
            let is_init = process.exec_id.is_empty();
            if is_init {
                let mut running = container.running_execs.subscribe();
                let all_exited = running.wait_for(|count| *count == 0);
                if tokio::time::timeout(EXEC_EXIT_GRACE, all_exited)
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        container = container.id,
                        "exec processes still run after the init process exited"
                    );
                }
            }
            let _lifecycle = container.lifecycle.lock().await;
            let exit = process.set_exited(status);
            tracing::info!(
                container = container.id,
                process = process.id(),
                pid = process.pid(),
                status,
                "process exited"
            );
            service.publish(&TaskExit {
                container_id: container.id.clone(),
                id: process.id().to_owned(),
                pid: process.pid(),
                exit_status: exit.status,
                exited_at: Some(exit.timestamp()),
            });
            if !is_init {
                container
                    .running_execs
                    .send_modify(|count| *count = count.saturating_sub(1));
            }
        });
    }
}

impl Service {
    /// Publishes TaskOOM for each OOM kill in the memory cgroup of the
    /// container's init process, until the cgroup goes away or the
    /// container is deleted. A container without a memory cgroup gets no
    /// events, and the failure is logged.
    pub fn watch_oom(self: &Arc<Self>, container: &Arc<Container>) {
        let id = container.id.clone();
        let watch = MemoryCgroup::of_process(container.init.pid())
            .and_then(|cgroup| cgroup.watch().map(|watch| (cgroup, watch)));
        let (cgroup, mut watch) = match watch {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, container = id, "OOM events are not watched");
                return;
            }
        };
        tracing::debug!(container = id, ?cgroup, "watching for OOM kills");
        let service = self.clone();
        let deleted = container.deleted.clone();
        tokio::spawn(async move {
            loop {
                let fired = tokio::select! {
                    fired = watch.next() => fired,
                    _ = deleted.cancelled() => false,
                };
                if !fired {
                    break;
                }
                tracing::info!(container = id, "OOM killer fired");
                service.publish(&TaskOom {
                    container_id: id.clone(),
                });
            }
        });
    }
}

/// Forwards `envelope`, retrying while containerd is unreachable. Later
/// events wait behind it, so containerd receives events in order.
async fn forward_with_retries(publisher: &Publisher, envelope: Envelope) {
    let topic = envelope.topic.clone();
    for attempt in 0..=PUBLISH_RETRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
        let error = match publisher.forward(envelope.clone()).await {
            Ok(()) => return,
            Err(error) => error,
        };
        let retry = matches!(error.code(), Code::Unavailable | Code::DeadlineExceeded);
        if !retry || attempt == PUBLISH_RETRIES {
            tracing::error!(%error, topic, attempt, "failed to publish event, dropping it");
            return;
        }
        tracing::warn!(%error, topic, attempt, "failed to publish event, retrying");
    }
}

/// Returns `<bundle>/<exec id>.<extension>`, or a hashed name when the exec
/// id would make an unusable file name.
fn exec_file(bundle: &Path, exec_id: &str, extension: &str) -> PathBuf {
    let safe = !exec_id.is_empty()
        && exec_id.len() <= 128
        && exec_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !exec_id.starts_with('.');
    let name = if safe {
        exec_id.to_owned()
    } else {
        format!(
            "exec-{:016x}",
            crate::bootstrap::fnv1a(exec_id.as_bytes(), 0)
        )
    };
    bundle.join(format!("{name}.{extension}"))
}

/// Maps a failed runtime call to an RPC error.
pub fn runtime_status(error: RuntimeError) -> RpcStatus {
    tracing::error!(%error, "runtime call failed");
    RpcStatus::unknown(error.to_string())
}
