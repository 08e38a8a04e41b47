//! The record of one container under `--root`: `ROOT/ID/state.json`,
//! written atomically, and the per-container lock.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups;
use crate::error::Context;
use crate::{Error, Result};

/// File name of the record in the container's directory.
pub const STATE_FILE: &str = "state.json";

/// The record the runtime keeps of a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// Pid of the container's init, as seen from the runtime's pid namespace.
    pub init_pid: i32,
    /// Start time of the init in clock ticks since boot, so that a reused
    /// pid is not mistaken for the init.
    pub init_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
    pub cgroup: cgroups::Manager,
    /// The init has its own pid namespace, so its death ends every process
    /// of the container.
    pub own_pid_namespace: bool,
    /// The configuration the container was created with: hooks run at
    /// `start` and `delete` after the bundle may have changed.
    pub config: Spec,
}

impl State {
    /// Returns the annotations of the container's configuration.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.config
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}

/// Returns the directory of container `id` under `root`.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Reads the record of `id`. A missing directory or record means the
/// container does not exist (it may be half-created by another command).
pub fn load(root: &Path, id: &str) -> Result<State> {
    let path = dir(root, id).join(STATE_FILE);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotExist(id.into()))
        }
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    serde_json::from_slice(&text)
        .map_err(|e| Error::Message(format!("corrupt state file {}: {e}", path.display())))
}

/// Writes the record atomically.
pub fn save(root: &Path, state: &State) -> Result<()> {
    let path = dir(root, &state.id).join(STATE_FILE);
    let text = serde_json::to_vec(state)
        .map_err(|e| Error::Message(format!("encode state of {}: {e}", state.id)))?;
    crate::utils::write_atomic(&path, &text).context(|| format!("write {}", path.display()))
}

/// Returns the name of the owner of the container's directory, or `#UID` when
/// the uid has no name.
pub fn owner(root: &Path, id: &str) -> String {
    let Ok(meta) = fs::metadata(dir(root, id)) else {
        return String::new();
    };
    let uid = meta.uid();
    match nix::unistd::User::from_uid(uid.into()) {
        Ok(Some(user)) => user.name,
        _ => format!("#{uid}"),
    }
}

/// An exclusive lock on one container's directory, released on drop. Every
/// command that changes a container takes it, so two commands on one id
/// run one after the other.
pub struct Lock {
    _flock: Flock<File>,
}

impl Lock {
    /// Waits for the lock on the directory of `id`.
    pub fn acquire(root: &Path, id: &str) -> Result<Lock> {
        Self::take(root, id, FlockArg::LockExclusive).map(|lock| lock.expect("blocking lock"))
    }

    /// Takes the lock on the directory of `id` if it is free. Returns `None`
    /// when another command has it or the directory is gone.
    pub fn try_acquire(root: &Path, id: &str) -> Result<Option<Lock>> {
        match Self::take(root, id, FlockArg::LockExclusiveNonblock) {
            Err(Error::NotExist(_)) => Ok(None),
            other => other,
        }
    }

    fn take(root: &Path, id: &str, mode: FlockArg) -> Result<Option<Lock>> {
        let path = dir(root, id);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotExist(id.into()))
            }
            Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
        };
        let fd = file.as_raw_fd();
        match Flock::lock(file, mode) {
            Ok(flock) => Ok(Some(Lock { _flock: flock })),
            Err((_, nix::Error::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(Error::sys(format!("lock {} (fd {fd})", path.display()), e)),
        }
    }
}
