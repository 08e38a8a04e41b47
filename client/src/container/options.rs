//! The flags of `run` and `create`, and their checks.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::record::RestartPolicy;

/// Smallest memory limit accepted, as docker's: below it the kernel's own
/// use of the cgroup leaves the process no room to start.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

/// Flags shared by `run` and `create`.
#[derive(Args, Debug, Clone, Default)]
pub struct CreateArgs {
    /// Name of the container; a generated name when absent.
    #[arg(long)]
    pub name: Option<String>,
    /// Keep standard input open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Environment variable KEY=VALUE, or KEY to take the value from
    /// hullctl's environment (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// File of KEY=VALUE lines to add to the environment (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// User as uid, uid:gid, name or name:group.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Command that replaces the image's entrypoint; "" clears it.
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Publish a container port on the host:
    /// [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL] (repeatable).
    #[arg(short, long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Bind mount or volume: [SOURCE:]DESTINATION[:OPTIONS] (repeatable).
    #[arg(short, long = "volume", value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// Mount as type=bind|volume|tmpfs,source=...,target=...[,readonly]
    /// (repeatable).
    #[arg(long = "mount", value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// tmpfs mount: DESTINATION[:OPTIONS] (repeatable).
    #[arg(long = "tmpfs", value_name = "TMPFS")]
    pub tmpfs: Vec<String>,
    /// Network mode: the default bridge network, none, host or a network
    /// name (repeatable for several networks).
    #[arg(long = "network", alias = "net", value_name = "NETWORK")]
    pub network: Vec<String>,
    /// Hostname inside the container [default: the first 12 characters of
    /// the id].
    #[arg(long)]
    pub hostname: Option<String>,
    /// Memory limit in bytes, or with a b, k, m or g suffix.
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Number of CPUs, as a decimal such as 1.5.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Maximum number of processes; -1 for no limit.
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Mount the rootfs read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Capability to add, such as NET_ADMIN or ALL (repeatable).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Capability to drop, such as CHOWN or ALL (repeatable).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false],
    /// apparmor=unconfined or label=disable (repeatable).
    #[arg(long = "security-opt", value_name = "OPTION")]
    pub security_opt: Vec<String>,
    /// Restart policy: no, on-failure or on-failure:MAX_RETRIES.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Signal that stop sends first [default: the image's StopSignal, else
    /// SIGTERM].
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Seconds stop waits before it kills the container.
    #[arg(long = "stop-timeout", default_value_t = 10)]
    pub stop_timeout: u32,
    /// Label KEY=VALUE (repeatable).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Log option max-size=SIZE or max-file=COUNT (repeatable).
    #[arg(long = "log-opt", value_name = "OPTION")]
    pub log_opt: Vec<String>,
    /// Image name, reference or id.
    pub image: String,
    /// Command and arguments that replace the image's Cmd.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub use crate::volume::parse_size;

/// Parses a `--memory` value and checks it against [`MIN_MEMORY_BYTES`].
pub fn parse_memory(value: &str) -> anyhow::Result<u64> {
    let bytes = parse_size(value)?;
    if bytes < MIN_MEMORY_BYTES {
        bail!(
            "invalid --memory {value}: the minimum memory limit is 6MiB ({MIN_MEMORY_BYTES} bytes)"
        );
    }
    Ok(bytes)
}

/// Parses `--restart`.
pub fn parse_restart(value: &str) -> anyhow::Result<RestartPolicy> {
    match value.split_once(':') {
        None if value == "no" => Ok(RestartPolicy::No),
        None if value == "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: 0 }),
        Some(("on-failure", count)) => {
            let max_retries = count.parse().with_context(|| {
                format!("invalid --restart {value}: the retry count must be a non-negative number")
            })?;
            Ok(RestartPolicy::OnFailure { max_retries })
        }
        _ => bail!("invalid --restart {value:?}: use no, on-failure or on-failure:MAX_RETRIES"),
    }
}

/// Parses `--cpus` into a CFS quota for a period of 100 ms.
pub fn cpu_quota(cpus: f64) -> anyhow::Result<(i64, u64)> {
    const PERIOD: u64 = 100_000;
    let online = std::thread::available_parallelism().map_or(1, |count| count.get());
    if !cpus.is_finite() || cpus < 0.01 {
        bail!("invalid --cpus {cpus}: use a number of at least 0.01");
    }
    if cpus > online as f64 {
        bail!("invalid --cpus {cpus}: this machine has {online} CPUs");
    }
    Ok(((cpus * PERIOD as f64) as i64, PERIOD))
}

/// Expands `-e` values and `--env-file` lines into KEY=VALUE pairs. A bare
/// KEY takes its value from hullctl's environment and is skipped when
/// unset, as docker does.
pub fn environment(args: &CreateArgs) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for file in &args.env_files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read --env-file {}", file.display()))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            lines.push(line.to_owned());
        }
    }
    lines.extend(args.env.iter().cloned());
    expand_env(lines)
}

/// Checks KEY=VALUE pairs and gives each bare KEY its value from hullctl's
/// environment, skipping the KEYs that are unset there.
pub fn expand_env(lines: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut env = Vec::with_capacity(lines.len());
    for line in lines {
        match line.split_once('=') {
            Some(("", _)) => bail!("invalid environment variable {line:?}: the name is empty"),
            Some(_) => env.push(line),
            None if line.is_empty() => {
                bail!("invalid environment variable \"\": the name is empty")
            }
            None => {
                if let Ok(value) = std::env::var(&line) {
                    env.push(format!("{line}={value}"));
                }
            }
        }
    }
    Ok(env)
}

/// Parses `--label` and `KEY=VALUE` values into pairs.
pub fn labels(values: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut labels = std::collections::BTreeMap::new();
    for value in values {
        let (key, text) = value.split_once('=').unwrap_or((value, ""));
        if key.is_empty() {
            bail!("invalid label {value:?}: the key is empty");
        }
        labels.insert(key.to_owned(), text.to_owned());
    }
    Ok(labels)
}

/// Security options that change the spec.
#[derive(Debug, Default, PartialEq)]
pub struct SecurityOptions {
    pub seccomp_unconfined: bool,
    pub seccomp_profile: Option<PathBuf>,
    pub no_new_privileges: Option<bool>,
}

/// Parses `--security-opt` values. AppArmor and SELinux options are
/// accepted only where they turn the module off, because hull applies
/// neither profile.
pub fn security_options(values: &[String]) -> anyhow::Result<SecurityOptions> {
    let mut options = SecurityOptions::default();
    for value in values {
        let (key, setting) = match value.split_once(['=', ':']) {
            Some((key, setting)) => (key, Some(setting)),
            None => (value.as_str(), None),
        };
        match (key, setting) {
            ("seccomp", Some("unconfined")) => options.seccomp_unconfined = true,
            ("seccomp", Some(path)) if !path.is_empty() => {
                options.seccomp_profile = Some(PathBuf::from(path))
            }
            ("no-new-privileges", None | Some("true")) => options.no_new_privileges = Some(true),
            ("no-new-privileges", Some("false")) => options.no_new_privileges = Some(false),
            ("apparmor", Some("unconfined")) | ("label", Some("disable")) => {}
            _ => bail!(
                "invalid --security-opt {value:?}: use seccomp=unconfined, seccomp=PROFILE.json, \
                 no-new-privileges[=true|false], apparmor=unconfined or label=disable"
            ),
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_below_minimum_rejected() {
        let err = parse_memory("4m").unwrap_err().to_string();
        assert!(err.contains("4m"), "{err}");
        assert!(err.contains("minimum"), "{err}");
        assert_eq!(parse_memory("6m").unwrap(), MIN_MEMORY_BYTES);
    }

    #[test]
    fn restart_policies_parsed() {
        assert_eq!(parse_restart("no").unwrap(), RestartPolicy::No);
        assert_eq!(
            parse_restart("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max_retries: 3 }
        );
        for bad in ["always", "on-failure:x", "unless-stopped", ""] {
            assert!(parse_restart(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn security_options_parsed() {
        let options = security_options(&[
            "seccomp=unconfined".into(),
            "no-new-privileges:false".into(),
            "apparmor=unconfined".into(),
        ])
        .unwrap();
        assert!(options.seccomp_unconfined);
        assert_eq!(options.no_new_privileges, Some(false));
        assert!(security_options(&["apparmor=docker-default".into()]).is_err());
        assert!(security_options(&["bogus".into()]).is_err());
    }
}
