//! Caller choices that override or extend what the image config sets, and
//! their checks.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::defaults::default_nofile_limit;
use super::BundleError;

/// Hostname used when [`BundleOptions::hostname`] is unset.
pub const DEFAULT_HOSTNAME: &str = "hull";

/// Source of the container's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// A new network namespace with only a loopback interface, docker's
    /// `--network none`.
    None,
    /// The host's network namespace: no network namespace entry at all.
    Host,
    /// The namespace at this path, such as `/var/run/netns/NAME` or
    /// `/proc/PID/ns/net`.
    Path(PathBuf),
}

/// A bind mount of a host path into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute path in the container.
    pub destination: String,
    /// Mounts read-only (`ro`) instead of read-write (`rw`).
    pub readonly: bool,
}

/// Options that [`super::generate`] applies on top of the image config.
///
/// Empty lists and `None` keep what the image sets. Every value is checked
/// before use, and an invalid one is an error naming it.
#[derive(Clone, Debug)]
pub struct BundleOptions {
    /// Arguments that replace the image's `Cmd`; empty keeps it.
    pub args_override: Vec<String>,
    /// Replaces the image's `Entrypoint`. A non-empty override also drops the
    /// image's `Cmd`, so only `args_override` follows it. `Some(vec![])`
    /// clears the entrypoint and keeps `Cmd`, as `docker run --entrypoint ""`
    /// does.
    pub entrypoint_override: Option<Vec<String>>,
    /// `KEY=VALUE` entries that replace image variables of the same key or
    /// are appended.
    pub env_extra: Vec<String>,
    /// `uid`, `uid:gid`, `name`, `name:group` (or mixed); replaces the
    /// image's `User`. An empty string means root.
    pub user_override: Option<String>,
    /// Absolute working directory; replaces the image's `WorkingDir`.
    pub workdir_override: Option<String>,
    /// UTS hostname, also exported as `HOSTNAME`; [`DEFAULT_HOSTNAME`] when
    /// unset.
    pub hostname: Option<String>,
    /// Gives the process a terminal and sets `TERM=xterm` unless set.
    pub terminal: bool,
    /// Mounts the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// Capabilities added to the default set: names with or without `CAP_`,
    /// in any case, or `ALL`.
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set, after `cap_add`; `ALL`
    /// removes every capability that `cap_add` does not name.
    pub cap_drop: Vec<String>,
    /// Sets `noNewPrivileges`, so setuid binaries and file capabilities
    /// cannot raise privileges.
    pub no_new_privileges: bool,
    /// Source of the network namespace; `None` is a new, empty one, as with
    /// [`NetworkMode::None`].
    pub network_namespace: Option<NetworkMode>,
    /// Bind mounts appended after the default mounts.
    pub mounts: Vec<BindMount>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// CPU time in microseconds the container may use per `cpu_period`.
    pub cpu_quota: Option<i64>,
    /// Length of the CPU quota period in microseconds; the kernel's default
    /// (100000) when unset.
    pub cpu_period: Option<u64>,
    /// Maximum number of processes and threads.
    pub pids_limit: Option<i64>,
    /// Soft and hard `RLIMIT_NOFILE` of the process. The default is
    /// [`super::NOFILE_LIMIT`] capped at this process's hard limit, because
    /// the runtime's caller needs a hard limit at least this high.
    pub nofile_limit: u64,
    /// Annotations added to the spec; they replace image-derived ones of the
    /// same key.
    pub annotations: HashMap<String, String>,
    /// Value of `root.path`: `rootfs` for the usual bundle layout, or an
    /// absolute path. `None` writes the `rootfs` argument of
    /// [`super::generate`] as given.
    pub root_path: Option<PathBuf>,
}

impl Default for BundleOptions {
    fn default() -> Self {
        BundleOptions {
            args_override: Vec::new(),
            entrypoint_override: None,
            env_extra: Vec::new(),
            user_override: None,
            workdir_override: None,
            hostname: None,
            terminal: false,
            readonly_rootfs: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            no_new_privileges: true,
            network_namespace: None,
            mounts: Vec::new(),
            memory_limit: None,
            cpu_quota: None,
            cpu_period: None,
            pids_limit: None,
            nofile_limit: default_nofile_limit(),
            annotations: HashMap::new(),
            root_path: None,
        }
    }
}

/// Smallest CPU quota and period the kernel accepts, in microseconds.
const MIN_CPU_MICROS: u64 = 1000;
/// Largest CPU period the kernel accepts (one second), in microseconds.
const MAX_CPU_PERIOD: u64 = 1_000_000;
/// Maximum hostname length of `sethostname(2)` (`HOST_NAME_MAX`).
const MAX_HOSTNAME_LEN: usize = 64;

impl BundleOptions {
    /// Checks every value that `generate` does not check while it uses it.
    pub fn validate(&self) -> Result<(), BundleError> {
        if let Some(hostname) = &self.hostname {
            validate_hostname(hostname)?;
        }
        if let Some(NetworkMode::Path(path)) = &self.network_namespace {
            if !path.is_absolute() {
                return Err(BundleError::InvalidNetworkPath { path: path.clone() });
            }
        }
        for mount in &self.mounts {
            validate_mount(mount)?;
        }
        self.validate_limits()?;
        for key in self.annotations.keys() {
            if key.is_empty() {
                return Err(BundleError::InvalidAnnotation { key: key.clone() });
            }
        }
        if let Some(root) = &self.root_path {
            let has_parent = root.components().any(|c| c == Component::ParentDir);
            if root.as_os_str().is_empty() || has_parent {
                return Err(BundleError::InvalidRootPath { path: root.clone() });
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), BundleError> {
        if let Some(limit) = self.memory_limit {
            if limit <= 0 {
                return Err(invalid_limit("memory limit", limit, "must be positive"));
            }
        }
        if let Some(quota) = self.cpu_quota {
            if quota < MIN_CPU_MICROS as i64 {
                return Err(invalid_limit(
                    "cpu quota",
                    quota,
                    "must be at least 1000 microseconds",
                ));
            }
        }
        if let Some(period) = self.cpu_period {
            if !(MIN_CPU_MICROS..=MAX_CPU_PERIOD).contains(&period) {
                return Err(invalid_limit(
                    "cpu period",
                    period,
                    "must be 1000 to 1000000 microseconds",
                ));
            }
        }
        if self.nofile_limit == 0 {
            return Err(invalid_limit("nofile limit", 0, "must be positive"));
        }
        if let Some(pids) = self.pids_limit {
            if pids <= 0 {
                return Err(invalid_limit("pids limit", pids, "must be positive"));
            }
        }
        Ok(())
    }
}

fn invalid_limit(name: &'static str, value: impl ToString, reason: &'static str) -> BundleError {
    BundleError::InvalidLimit {
        name,
        value: value.to_string(),
        reason,
    }
}

/// Checks `hostname` as RFC 1123 labels separated by dots.
fn validate_hostname(hostname: &str) -> Result<(), BundleError> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if hostname.len() > MAX_HOSTNAME_LEN || !hostname.split('.').all(label_ok) {
        return Err(BundleError::InvalidHostname {
            hostname: hostname.to_owned(),
        });
    }
    Ok(())
}

fn validate_mount(mount: &BindMount) -> Result<(), BundleError> {
    let invalid = |reason| BundleError::InvalidMount {
        source_path: mount.source.clone(),
        destination: mount.destination.clone(),
        reason,
    };
    if !mount.source.is_absolute() {
        return Err(invalid("the source is not an absolute path"));
    }
    if !mount.source.exists() {
        return Err(invalid("the source does not exist"));
    }
    let destination = Path::new(&mount.destination);
    if !destination.is_absolute() {
        return Err(invalid("the destination is not an absolute path"));
    }
    if destination.components().any(|c| c == Component::ParentDir) {
        return Err(invalid("the destination contains `..`"));
    }
    if destination.parent().is_none() {
        return Err(invalid("the destination is the container's root"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_enable_no_new_privileges() {
        let options = BundleOptions::default();
        assert!(options.no_new_privileges);
        assert!(options.validate().is_ok());
    }

    #[test]
    fn hostname_rules() {
        for good in ["a", "web-1", "db.example.com", &"x".repeat(63)] {
            assert!(validate_hostname(good).is_ok(), "{good} rejected");
        }
        for bad in ["", "-a", "a-", "a_b", "a..b", "a b", &"x".repeat(65)] {
            let err = validate_hostname(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err} does not name {bad}");
        }
    }

    #[test]
    fn mount_checks_name_the_value() {
        let cases = [
            ("relative", "/data", "not an absolute path"),
            ("/nonexistent-hull-source", "/data", "does not exist"),
            ("/tmp", "data", "destination is not an absolute"),
            ("/tmp", "/data/../etc", "contains `..`"),
            ("/tmp", "/", "container's root"),
        ];
        for (source, destination, reason) in cases {
            let options = BundleOptions {
                mounts: vec![BindMount {
                    source: source.into(),
                    destination: destination.into(),
                    readonly: true,
                }],
                ..Default::default()
            };
            let message = options.validate().unwrap_err().to_string();
            assert!(message.contains(reason), "{message}");
            assert!(message.contains(destination), "{message}");
        }
    }

    #[test]
    fn limits_reject_nonpositive_values() {
        let memory = BundleOptions {
            memory_limit: Some(0),
            ..Default::default()
        };
        assert!(memory.validate().unwrap_err().to_string().contains("0"));
        let quota = BundleOptions {
            cpu_quota: Some(999),
            ..Default::default()
        };
        assert!(quota.validate().unwrap_err().to_string().contains("999"));
        let period = BundleOptions {
            cpu_period: Some(2_000_000),
            ..Default::default()
        };
        assert!(period.validate().is_err());
        let pids = BundleOptions {
            pids_limit: Some(-1),
            ..Default::default()
        };
        assert!(pids.validate().unwrap_err().to_string().contains("-1"));
    }

    #[test]
    fn network_path_must_be_absolute() {
        let options = BundleOptions {
            network_namespace: Some(NetworkMode::Path("netns/a".into())),
            ..Default::default()
        };
        assert!(options
            .validate()
            .unwrap_err()
            .to_string()
            .contains("netns/a"));
    }

    #[test]
    fn root_path_rejects_parent_components() {
        let options = BundleOptions {
            root_path: Some("../rootfs".into()),
            ..Default::default()
        };
        assert!(options.validate().is_err());
    }
}
