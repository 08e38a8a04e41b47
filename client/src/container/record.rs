//! What hullctl stores about one container.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A container's lifecycle state as hullctl records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The record exists but the rootfs, bundle or task may be incomplete:
    /// `create` has not finished, or crashed.
    Creating,
    Created,
    Running,
    Paused,
    Exited,
    /// `rm` has begun removing the container.
    Removing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating | State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Exited => "exited",
            State::Removing => "removing",
        }
    }
}

/// When a container that exited by itself is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum RestartPolicy {
    #[default]
    No,
    /// After a non-zero exit, up to `max_retries` times (0: no limit).
    OnFailure {
        #[serde(rename = "maximumRetryCount")]
        max_retries: u32,
    },
}

/// A mount of a volume, bind or tmpfs, as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountInfo {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    /// The volume name, for volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    /// Removed with the container (`--rm` and `rm -v`).
    #[serde(default)]
    pub anonymous: bool,
}

/// A port published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedPort {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// The overlay mount that makes the rootfs, as hull-imaged returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsMount {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// The running shim of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimRecord {
    /// Path of the shim's ttrpc socket; gRPC listens at `<path>.grpc`.
    pub socket: String,
    pub pid: u32,
}

/// Settings given at create time that later commands need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub tty: bool,
    pub interactive: bool,
    /// Remove the container once it exits.
    pub auto_remove: bool,
    pub restart: RestartPolicy,
    /// Signal name or number that `stop` sends first.
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: u32,
    /// `bridge`, `none`, `host` or network names.
    pub network_mode: String,
    pub networks: Vec<String>,
    pub ports: Vec<PublishedPort>,
    pub hostname: String,
    /// Log rotation: bytes per file (no limit when absent) and files kept.
    pub log_max_size: Option<u64>,
    pub log_max_files: u32,
}

/// `<root>/containers/<id>/container.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The stored image's id (`sha256:...` of its config).
    pub image_id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// The process's args, for `ps`.
    pub command: Vec<String>,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Set by `stop` and `kill` so that the restart policy leaves the
    /// container stopped.
    #[serde(default)]
    pub stopped_by_user: bool,
    #[serde(default)]
    pub restart_count: u32,
    /// The pid of a hullctl that relays the container's output in the
    /// foreground (`run` without `-d`, `start -a`) and finishes the
    /// container itself when it exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<u32>,
    /// Token of the latest start. The logging program's exit command
    /// passes it back, so that the late exit command of an earlier start
    /// (as in `restart`) leaves the new one alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_token: Option<String>,
    pub settings: Settings,
    /// The overlay mounts at `rootfs/`, kept so the rootfs can be mounted
    /// again after a reboot.
    pub rootfs: Vec<RootfsMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim: Option<ShimRecord>,
    #[serde(default)]
    pub mounts: Vec<MountInfo>,
    /// Names of the volumes the container uses.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The network setup of the running container, as the network module
    /// returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_attachment: Option<serde_json::Value>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl ContainerRecord {
    /// The first 12 characters of the id, as `ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}
