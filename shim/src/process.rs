//! Containers and their processes as the shim tracks them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hull_proto::containerd::v1::types::Status;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::RestoreRequest;
use crate::options::ShimOptions;
use crate::runtime::Runtime;
use crate::stdio::{ProcessIo, StdioPaths};

/// Exit status and time of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

impl Exit {
    pub fn timestamp(&self) -> prost_types::Timestamp {
        prost_types::Timestamp::from(self.at)
    }
}

#[derive(Debug)]
struct ProcessState {
    pid: u32,
    status: Status,
}

/// The init process or an exec process of a container.
pub struct Process {
    pub container_id: String,
    /// Empty for the init process.
    pub exec_id: String,
    pub stdio: StdioPaths,
    /// The OCI `Process` JSON of an exec process.
    pub spec: Vec<u8>,
    state: Mutex<ProcessState>,
    exit: watch::Sender<Option<Exit>>,
    pub io: tokio::sync::Mutex<ProcessIo>,
}

impl Process {
    pub fn new(container_id: &str, exec_id: &str, stdio: StdioPaths, spec: Vec<u8>) -> Process {
        Process {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
            stdio,
            spec,
            state: Mutex::new(ProcessState {
                pid: 0,
                status: Status::Created,
            }),
            exit: watch::Sender::new(None),
            io: tokio::sync::Mutex::new(ProcessIo::default()),
        }
    }

    /// Returns the id that events and requests use: the exec id, or the
    /// container id for the init process.
    pub fn id(&self) -> &str {
        if self.exec_id.is_empty() {
            &self.container_id
        } else {
            &self.exec_id
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProcessState> {
        self.state.lock().expect("process state lock poisoned")
    }

    pub fn pid(&self) -> u32 {
        self.lock().pid
    }

    pub fn set_pid(&self, pid: u32) {
        self.lock().pid = pid;
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    /// Changes the status unless the process has stopped, which is final.
    pub fn set_status(&self, status: Status) {
        let mut state = self.lock();
        if state.status != Status::Stopped {
            state.status = status;
        }
    }

    /// Records the exit and wakes the waiters.
    pub fn set_exited(&self, status: u32) -> Exit {
        let exit = Exit {
            status,
            at: SystemTime::now(),
        };
        self.lock().status = Status::Stopped;
        self.exit.send_replace(Some(exit));
        exit
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Waits until the process has exited.
    pub async fn wait(&self) -> Exit {
        let mut receiver = self.exit.subscribe();
        let exit = receiver
            .wait_for(Option::is_some)
            .await
            .expect("the process owns the exit sender");
        exit.expect("waited for an exit")
    }
}

/// A container: its bundle, runtime and processes.
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs_mounted: bool,
    pub options: ShimOptions,
    pub runtime: Runtime,
    pub init: Arc<Process>,
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// Serializes starting processes with publishing their exits, so that
    /// TaskStart and TaskExecStarted precede the TaskExit of a process.
    pub lifecycle: tokio::sync::Mutex<()>,
    /// Number of started exec processes whose exit is not yet published.
    pub running_execs: watch::Sender<usize>,
    /// Cancelled when the container is deleted, which stops its watchers.
    pub deleted: CancellationToken,
    /// The checkpoint of a container created from one. Start restores it
    /// in place of `start` and then clears it.
    pub restore: Mutex<Option<RestoreRequest>>,
}

impl Container {
    /// Returns whether a restore waits for Start, so the runtime has no
    /// container yet.
    pub fn restore_pending(&self) -> bool {
        self.restore
            .lock()
            .expect("restore lock poisoned")
            .is_some()
    }

    pub fn exec(&self, exec_id: &str) -> Option<Arc<Process>> {
        self.execs
            .lock()
            .expect("exec table lock poisoned")
            .get(exec_id)
            .cloned()
    }

    /// Returns the init process for an empty `exec_id`, else that exec.
    pub fn process(&self, exec_id: &str) -> Option<Arc<Process>> {
        if exec_id.is_empty() {
            Some(self.init.clone())
        } else {
            self.exec(exec_id)
        }
    }

    /// Maps pids of exec processes to their exec ids.
    pub fn exec_pids(&self) -> HashMap<u32, String> {
        self.execs
            .lock()
            .expect("exec table lock poisoned")
            .values()
            .map(|process| (process.pid(), process.exec_id.clone()))
            .collect()
    }
}
