//! Runtime bundles from image configs: [`generate`] turns an image's
//! `config` and the caller's [`BundleOptions`] into the `config.json` that
//! `hull run` and runc take, with docker's defaults for a non-privileged
//! container, and [`write_bundle`] stores it.

mod capabilities;
mod defaults;
mod options;
mod process;
mod seccomp;
pub mod user;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    PosixRlimitBuilder, PosixRlimitType, Process, RootBuilder, Spec, UserBuilder,
};
use oci_spec::OciSpecError;

pub use capabilities::{ALL_CAPABILITIES, DEFAULT_CAPABILITIES};
pub use defaults::{default_nofile_limit, MASKED_PATHS, NOFILE_LIMIT, READONLY_PATHS};
pub use options::{BindMount, BundleOptions, NetworkMode, DEFAULT_HOSTNAME};
pub use process::DEFAULT_PATH;
pub use seccomp::{default_seccomp, profile_for as seccomp_profile_for};

/// Annotation with the image's `StopSignal`.
pub const STOP_SIGNAL_ANNOTATION: &str = "org.opencontainers.image.stopSignal";
/// Annotation with the image's `ExposedPorts`, comma-separated and sorted.
pub const EXPOSED_PORTS_ANNOTATION: &str = "org.opencontainers.image.exposedPorts";
/// Annotation with the image's `Volumes`, comma-separated and sorted.
pub const VOLUMES_ANNOTATION: &str = "hull.image.volumes";

/// The OCI runtime spec version written to `ociVersion`.
const OCI_VERSION: &str = "1.0.2";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("no command to run: the image sets no Entrypoint or Cmd, so give a command")]
    NoCommand,
    #[error("invalid working directory {workdir:?}: it must be an absolute path")]
    RelativeWorkdir { workdir: String },
    #[error("invalid environment entry {entry:?}: expected KEY=VALUE with a non-empty KEY")]
    InvalidEnv { entry: String },
    #[error("invalid user {user:?}: expected uid, uid:gid, name or name:group")]
    InvalidUser { user: String },
    #[error("user {user:?} not found in the image's {file}")]
    UserNotFound { user: String, file: &'static str },
    #[error("group {group:?} not found in the image's {file}")]
    GroupNotFound { group: String, file: &'static str },
    #[error("failed to open the rootfs {path}: {source}")]
    OpenRootfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file")]
    NotRegularFile { path: PathBuf },
    #[error("{path} is too large to read ({size} bytes)")]
    FileTooLarge { path: PathBuf, size: u64 },
    #[error(
        "unknown capability {name:?}: expected a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL"
    )]
    UnknownCapability { name: String },
    #[error("invalid hostname {hostname:?}: expected dot-separated labels of letters, digits and '-', at most 64 characters")]
    InvalidHostname { hostname: String },
    #[error("invalid network namespace path {path}: it must be absolute")]
    InvalidNetworkPath { path: PathBuf },
    #[error("invalid bind mount {source_path} -> {destination}: {reason}")]
    InvalidMount {
        source_path: PathBuf,
        destination: String,
        reason: &'static str,
    },
    #[error("invalid {name} {value}: {reason}")]
    InvalidLimit {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid annotation key {key:?}: it must not be empty")]
    InvalidAnnotation { key: String },
    #[error("invalid root path {path}: expected `rootfs` or another path without `..`")]
    InvalidRootPath { path: PathBuf },
    #[error("failed to build the runtime spec: {0}")]
    Spec(#[from] OciSpecError),
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Builds the runtime spec for a container of the image with config
/// `image_config`, unpacked at `rootfs`.
///
/// Names in `User` are resolved through the image's `/etc/passwd` and
/// `/etc/group` below `rootfs`, without following symlinks out of it.
/// Image labels are not copied into the annotations.
pub fn generate(
    image_config: &ImageConfiguration,
    rootfs: &Path,
    opts: &BundleOptions,
) -> Result<Spec, BundleError> {
    opts.validate()?;
    let config = image_config.config().clone().unwrap_or_default();
    let strings = |list: &Option<Vec<String>>| list.clone().unwrap_or_default();

    let args = process::command_line(
        &strings(config.entrypoint()),
        &strings(config.cmd()),
        opts.entrypoint_override.as_deref(),
        &opts.args_override,
    )?;
    let hostname = opts.hostname.as_deref().unwrap_or(DEFAULT_HOSTNAME);
    let mut env = process::environment(
        &strings(config.env()),
        &opts.env_extra,
        hostname,
        opts.terminal,
    )?;
    let cwd = process::working_dir(
        config.working_dir().as_deref(),
        opts.workdir_override.as_deref(),
    )?;

    let user_spec = opts
        .user_override
        .as_deref()
        .or(config.user().as_deref())
        .unwrap_or("");
    let resolved = user::resolve(rootfs, user_spec)?;
    env.set_default("HOME", resolved.home.as_deref().unwrap_or("/"));
    let mut user = UserBuilder::default().uid(resolved.uid).gid(resolved.gid);
    if !resolved.additional_gids.is_empty() {
        user = user.additional_gids(resolved.additional_gids.clone());
    }

    let caps = capabilities::effective_set(&opts.cap_add, &opts.cap_drop)?;
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(opts.nofile_limit)
        .hard(opts.nofile_limit)
        .build()?;

    let mut process = Process::default();
    process.set_terminal(Some(opts.terminal));
    process.set_console_size(None);
    process.set_user(user.build()?);
    process.set_args(Some(args));
    process.set_env(Some(env.to_list()));
    process.set_cwd(PathBuf::from(cwd));
    process.set_capabilities(Some(capabilities::linux_capabilities(&caps)?));
    process.set_rlimits(Some(vec![nofile]));
    process.set_no_new_privileges(Some(opts.no_new_privileges));
    process.set_apparmor_profile(None);
    process.set_oom_score_adj(None);
    process.set_selinux_label(None);

    let root_path = opts
        .root_path
        .clone()
        .unwrap_or_else(|| rootfs.to_path_buf());
    let root = RootBuilder::default()
        .path(root_path)
        .readonly(opts.readonly_rootfs)
        .build()?;

    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_uid_mappings(None);
    linux.set_gid_mappings(None);
    linux.set_sysctl(None);
    linux.set_resources(Some(defaults::resources(opts)?));
    linux.set_cgroups_path(None);
    linux.set_namespaces(Some(defaults::namespaces(opts)?));
    linux.set_devices(None);
    linux.set_seccomp(Some(seccomp::profile_for(&caps)));
    linux.set_rootfs_propagation(None);
    linux.set_masked_paths(Some(to_strings(&MASKED_PATHS)));
    linux.set_readonly_paths(Some(to_strings(&READONLY_PATHS)));

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_owned());
    spec.set_root(Some(root));
    spec.set_mounts(Some(defaults::mounts(opts)?));
    spec.set_process(Some(process));
    spec.set_hostname(Some(hostname.to_owned()));
    spec.set_domainname(None);
    spec.set_hooks(None);
    spec.set_annotations(Some(annotations(&config, opts)));
    spec.set_linux(Some(linux));
    Ok(spec)
}

fn to_strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Returns the image-derived annotations with the options' annotations on
/// top.
fn annotations(config: &oci_spec::image::Config, opts: &BundleOptions) -> HashMap<String, String> {
    let mut annotations = HashMap::new();
    if let Some(signal) = config.stop_signal().as_deref().filter(|s| !s.is_empty()) {
        annotations.insert(STOP_SIGNAL_ANNOTATION.to_owned(), signal.to_owned());
    }
    let sorted_list = |list: &Option<Vec<String>>| {
        let mut items = list.clone().unwrap_or_default();
        items.sort();
        items.dedup();
        items.join(",")
    };
    let ports = sorted_list(config.exposed_ports());
    if !ports.is_empty() {
        annotations.insert(EXPOSED_PORTS_ANNOTATION.to_owned(), ports);
    }
    let volumes = sorted_list(config.volumes());
    if !volumes.is_empty() {
        annotations.insert(VOLUMES_ANNOTATION.to_owned(), volumes);
    }
    for (key, value) in &opts.annotations {
        annotations.insert(key.clone(), value.clone());
    }
    annotations
}

/// Writes `spec` to `dir/config.json`, creating `dir` if needed.
///
/// The JSON goes to a temporary file in `dir` that is synced and renamed
/// over `config.json`, so a reader sees the old file or the complete new one.
pub fn write_bundle(dir: &Path, spec: &Spec) -> Result<(), BundleError> {
    let target = dir.join("config.json");
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(write_error(dir))?;
    let json = serde_json::to_vec_pretty(spec).map_err(|e| BundleError::Write {
        path: target.clone(),
        source: e.into(),
    })?;

    // The pid and a counter keep concurrent writers apart.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!(
        ".config.json.{}.{sequence}.tmp",
        std::process::id()
    ));
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&temporary, &target)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&temporary);
        return Err(BundleError::Write {
            path: target,
            source,
        });
    }
    Ok(())
}
