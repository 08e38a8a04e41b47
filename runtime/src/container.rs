//! A container's status, derived from its record and the live system, and
//! the operations each status allows.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::state::{self, State};
use crate::{utils, Error, Result};

/// The status of a container, as `state` and `list` print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    /// Checks that `operation` may be applied to a container in this status.
    pub fn check(self, operation: Operation, id: &str) -> Result<()> {
        if operation.allowed_from().contains(&self) {
            return Ok(());
        }
        Err(match operation {
            Operation::Kill | Operation::Pause => Error::NotRunning,
            Operation::Resume => Error::Message("container not paused".into()),
            Operation::Delete => Error::Message(format!(
                "cannot delete container {id} that is not stopped: {}",
                self.as_str()
            )),
            _ => Error::BadStatus {
                action: operation.verb(),
                id: id.into(),
                status: self.as_str(),
            },
        })
    }
}

/// An operation a command applies to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Kill,
    Delete,
    ForceDelete,
    Pause,
    Resume,
}

impl Operation {
    /// Returns the statuses from which the operation is allowed: the
    /// transition table of the runtime, written once.
    pub fn allowed_from(self) -> &'static [Status] {
        use Status::*;
        match self {
            Operation::Start => &[Created],
            Operation::Kill => &[Created, Running, Paused],
            Operation::Delete => &[Created, Stopped],
            Operation::ForceDelete => &[Created, Running, Paused, Stopped],
            Operation::Pause => &[Created, Running],
            Operation::Resume => &[Paused],
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::Kill => "kill",
            Operation::Delete | Operation::ForceDelete => "delete",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
        }
    }
}

/// A container loaded from `--root`.
#[derive(Debug, Clone)]
pub struct Container {
    pub root: PathBuf,
    pub state: State,
}

/// The OCI state of a container, in the field order runc prints.
#[derive(Debug, Serialize)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    pub owner: String,
}

impl Container {
    /// Loads container `id` from `root`.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        crate::id::validate(id)?;
        Ok(Container {
            root: root.to_path_buf(),
            state: state::load(root, id)?,
        })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn dir(&self) -> PathBuf {
        state::dir(&self.root, &self.state.id)
    }

    /// Returns the path of the socket that `start` connects to. The socket
    /// exists while the container is created and not yet started.
    pub fn exec_socket_path(&self) -> PathBuf {
        crate::exec_socket::path_in(&self.dir())
    }

    /// Returns true while the init process recorded for the container runs.
    /// An exiting process or a zombie counts as exited, and so does another
    /// process that reused the pid.
    pub fn init_alive(&self) -> bool {
        let pid = self.state.init_pid;
        if pid <= 0 {
            return false;
        }
        match utils::proc_stat(pid) {
            Some(stat) => stat.start_time == self.state.init_start_time && !stat.exited(),
            None => false,
        }
    }

    /// Derives the status from the live system.
    pub fn status(&self) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        // A frozen cgroup wins over the exec socket: a created container
        // can be paused too.
        if self.state.cgroup.is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        if self.exec_socket_path().exists() {
            return Status::Created;
        }
        Status::Running
    }

    /// Returns the state as `state` prints it, with pid 0 once the init
    /// exited.
    pub fn oci_state(&self) -> OciState {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.state.init_pid
        };
        OciState {
            oci_version: self.state.oci_version.clone(),
            id: self.state.id.clone(),
            pid,
            status,
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            annotations: self.state.annotations(),
            owner: state::owner(&self.root, &self.state.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;
    use Status::*;

    #[test]
    fn transition_table() {
        let all = [Creating, Created, Running, Paused, Stopped];
        let table: [(Operation, &[Status]); 6] = [
            (Start, &[Created]),
            (Kill, &[Created, Running, Paused]),
            (Delete, &[Created, Stopped]),
            (ForceDelete, &[Created, Running, Paused, Stopped]),
            (Pause, &[Created, Running]),
            (Resume, &[Paused]),
        ];
        for (operation, allowed) in table {
            for status in all {
                assert_eq!(
                    status.check(operation, "c").is_ok(),
                    allowed.contains(&status),
                    "{operation:?} from {status:?}"
                );
            }
        }
    }

    #[test]
    fn kill_of_stopped_says_not_running() {
        let message = Stopped.check(Kill, "c").unwrap_err().to_string();
        assert_eq!(message, "container not running");
    }

    #[test]
    fn delete_of_running_names_status() {
        let message = Running.check(Delete, "c").unwrap_err().to_string();
        assert_eq!(
            message,
            "cannot delete container c that is not stopped: running"
        );
    }
}
