//! Checkpoint and restore with the runtime's criu commands: the arguments
//! of `checkpoint` from containerd's `containerd.runc.v1.CheckpointOptions`,
//! and of `restore` for a task created from a checkpoint image.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use hull_proto::containerd::runc::v1::CheckpointOptions;
use hull_proto::events::from_any;

use crate::process::Container;
use crate::runtime::SpawnOptions;
use crate::service::runtime_status;

/// Directory in the bundle for criu's work files (logs) of a checkpoint
/// that names no work path. The shim removes it after the checkpoint.
pub const DEFAULT_WORK_DIR: &str = "criu-work";

/// Copy in the bundle of criu's log of a failed checkpoint.
pub const DUMP_LOG_COPY: &str = "criu-dump.log";

/// An invalid checkpoint request.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("invalid checkpoint options of type {type_url}: {source}")]
    Decode {
        type_url: String,
        source: prost::DecodeError,
    },
    #[error(
        "unsupported checkpoint options type {0}: expected containerd.runc.v1.CheckpointOptions"
    )]
    UnsupportedType(String),
    #[error("checkpoint request names no image path")]
    MissingImagePath,
}

/// Decodes `CheckpointTaskRequest.options`. No options give the defaults,
/// which leave the container running.
pub fn decode_options(
    any: Option<&prost_types::Any>,
) -> Result<CheckpointOptions, CheckpointError> {
    let Some(any) = any.filter(|any| !any.type_url.is_empty()) else {
        return Ok(CheckpointOptions::default());
    };
    match from_any::<CheckpointOptions>(any) {
        Some(Ok(options)) => Ok(options),
        Some(Err(source)) => Err(CheckpointError::Decode {
            type_url: any.type_url.clone(),
            source,
        }),
        None => Err(CheckpointError::UnsupportedType(any.type_url.clone())),
    }
}

/// Paths of one checkpoint.
#[derive(Debug, PartialEq, Eq)]
pub struct CheckpointPaths {
    pub image: PathBuf,
    pub work: PathBuf,
    /// Whether `work` is the shim's own directory in the bundle, which it
    /// removes afterwards.
    pub temporary_work: bool,
}

impl CheckpointPaths {
    /// Chooses the image directory (the request's path, else the options'
    /// `image_path`) and the work directory (the options' `work_path`, else
    /// the runtime options' `CriuWorkPath`, else `<bundle>/criu-work`).
    pub fn resolve(
        request_path: &str,
        options: &CheckpointOptions,
        criu_work_path: &str,
        bundle: &Path,
    ) -> Result<CheckpointPaths, CheckpointError> {
        let image = [request_path, options.image_path.as_str()]
            .into_iter()
            .find(|path| !path.is_empty())
            .ok_or(CheckpointError::MissingImagePath)?;
        let work = [options.work_path.as_str(), criu_work_path]
            .into_iter()
            .find(|path| !path.is_empty());
        Ok(CheckpointPaths {
            image: PathBuf::from(image),
            work: work.map_or_else(|| bundle.join(DEFAULT_WORK_DIR), PathBuf::from),
            temporary_work: work.is_none(),
        })
    }
}

/// Builds the arguments of `<runtime> checkpoint` before the container id.
pub fn checkpoint_args(paths: &CheckpointPaths, options: &CheckpointOptions) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "checkpoint".into(),
        "--image-path".into(),
        paths.image.clone().into(),
        "--work-path".into(),
        paths.work.clone().into(),
    ];
    if !options.parent_path.is_empty() {
        args.push("--parent-path".into());
        args.push(options.parent_path.clone().into());
    }
    if !options.exit {
        args.push("--leave-running".into());
    }
    let flags = [
        (options.open_tcp, "--tcp-established"),
        (options.external_unix_sockets, "--ext-unix-sk"),
        (options.terminal, "--shell-job"),
        (options.file_locks, "--file-locks"),
    ];
    for (set, flag) in flags {
        if set {
            args.push(flag.into());
        }
    }
    for namespace in &options.empty_namespaces {
        args.push("--empty-ns".into());
        args.push(namespace.clone().into());
    }
    if !options.cgroups_mode.is_empty() {
        args.push("--manage-cgroups-mode".into());
        args.push(options.cgroups_mode.clone().into());
    }
    args
}

/// Runs the runtime's `checkpoint` for `request` and returns the image
/// directory. After a failure, criu's log is copied to
/// `<bundle>/criu-dump.log`, which the error names, because a temporary
/// work directory is removed.
pub async fn run(
    container: &Container,
    request: &hull_proto::containerd::task::v3::CheckpointTaskRequest,
) -> Result<String, tonic::Status> {
    let invalid = |error: CheckpointError| tonic::Status::invalid_argument(error.to_string());
    let options = decode_options(request.options.as_ref()).map_err(invalid)?;
    let paths = CheckpointPaths::resolve(
        &request.path,
        &options,
        &container.options.criu_work_path,
        &container.bundle,
    )
    .map_err(invalid)?;
    let args = checkpoint_args(&paths, &options);
    let result = container.runtime.checkpoint(&container.id, args).await;
    if let Err(error) = result {
        let copy = container.bundle.join(DUMP_LOG_COPY);
        let copied = std::fs::copy(paths.work.join("dump.log"), &copy).is_ok();
        if paths.temporary_work {
            let _ = std::fs::remove_dir_all(&paths.work);
        }
        let mut status = runtime_status(error);
        if copied {
            status = tonic::Status::new(
                status.code(),
                format!("{}: criu log in {}", status.message(), copy.display()),
            );
        }
        return Err(status);
    }
    if paths.temporary_work {
        if let Err(error) = std::fs::remove_dir_all(&paths.work) {
            tracing::warn!(%error, path = %paths.work.display(), "failed to remove the criu work directory");
        }
    }
    tracing::info!(container = container.id, image = %paths.image.display(), exit = options.exit, "container checkpointed");
    Ok(paths.image.display().to_string())
}

/// A pending restore: the checkpoint image of `CreateTaskRequest.checkpoint`,
/// restored when the task starts, as containerd's runc shim does.
///
/// NOTE: the restore has run only in unit tests of its arguments, because
/// criu 3.17 fails `criu check` on the kernel of the test machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreRequest {
    pub image: PathBuf,
    /// The runtime options' `CriuWorkPath`, if set. Without it the runtime
    /// writes its logs into the image directory.
    pub work: Option<PathBuf>,
}

impl RestoreRequest {
    /// Returns the restore of `checkpoint`, or `None` for an empty path,
    /// which means a plain create.
    pub fn new(checkpoint: &str, criu_work_path: &str) -> Option<RestoreRequest> {
        if checkpoint.is_empty() {
            return None;
        }
        Some(RestoreRequest {
            image: PathBuf::from(checkpoint),
            work: (!criu_work_path.is_empty()).then(|| PathBuf::from(criu_work_path)),
        })
    }
}

/// Builds the arguments of `<runtime> restore --detach` before the
/// container id. `--no-subreaper` leaves the restored processes to the
/// shim, which is the subreaper that collects their exits.
pub fn restore_args(
    restore: &RestoreRequest,
    bundle: &Path,
    options: &SpawnOptions<'_>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "restore".into(),
        "--image-path".into(),
        restore.image.clone().into(),
    ];
    if let Some(work) = &restore.work {
        args.push("--work-path".into());
        args.push(work.clone().into());
    }
    args.extend([
        "--bundle".into(),
        bundle.into(),
        "--detach".into(),
        "--no-subreaper".into(),
        "--pid-file".into(),
        options.pid_file.into(),
    ]);
    if let Some(socket) = options.console_socket {
        args.push("--console-socket".into());
        args.push(socket.into());
    }
    if options.no_pivot {
        args.push("--no-pivot".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_proto::events::to_any;

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|arg| arg.to_str().unwrap()).collect()
    }

    fn paths(options: &CheckpointOptions) -> CheckpointPaths {
        CheckpointPaths::resolve("/images/c1", options, "", Path::new("/bundle")).unwrap()
    }

    #[test]
    fn checkpoint_default_leaves_running() {
        let options = CheckpointOptions::default();
        let paths = paths(&options);
        assert_eq!(paths.work, Path::new("/bundle/criu-work"));
        assert!(paths.temporary_work);
        assert_eq!(
            strings(&checkpoint_args(&paths, &options)),
            [
                "checkpoint",
                "--image-path",
                "/images/c1",
                "--work-path",
                "/bundle/criu-work",
                "--leave-running"
            ]
        );
    }

    #[test]
    fn checkpoint_every_option() {
        let options = CheckpointOptions {
            exit: true,
            open_tcp: true,
            external_unix_sockets: true,
            terminal: true,
            file_locks: true,
            empty_namespaces: vec!["network".into(), "ipc".into()],
            cgroups_mode: "full".into(),
            image_path: "/ignored".into(),
            work_path: "/work/c1".into(),
            parent_path: "/images/c0".into(),
        };
        let paths = paths(&options);
        assert!(!paths.temporary_work);
        assert_eq!(
            strings(&checkpoint_args(&paths, &options)),
            [
                "checkpoint",
                "--image-path",
                "/images/c1",
                "--work-path",
                "/work/c1",
                "--parent-path",
                "/images/c0",
                "--tcp-established",
                "--ext-unix-sk",
                "--shell-job",
                "--file-locks",
                "--empty-ns",
                "network",
                "--empty-ns",
                "ipc",
                "--manage-cgroups-mode",
                "full"
            ]
        );
    }

    #[test]
    fn checkpoint_paths_fallbacks() {
        let options = CheckpointOptions {
            image_path: "/images/from-options".into(),
            ..Default::default()
        };
        let paths = CheckpointPaths::resolve("", &options, "/criu/work", Path::new("/b")).unwrap();
        assert_eq!(paths.image, Path::new("/images/from-options"));
        assert_eq!(paths.work, Path::new("/criu/work"));
        assert!(!paths.temporary_work);

        let missing =
            CheckpointPaths::resolve("", &CheckpointOptions::default(), "", Path::new("/b"));
        assert!(matches!(missing, Err(CheckpointError::MissingImagePath)));
    }

    #[test]
    fn checkpoint_options_decode() {
        assert_eq!(decode_options(None).unwrap(), CheckpointOptions::default());
        let sent = CheckpointOptions {
            exit: true,
            cgroups_mode: "soft".into(),
            ..Default::default()
        };
        assert_eq!(decode_options(Some(&to_any(&sent))).unwrap(), sent);
        let unknown = prost_types::Any {
            type_url: "example.Unknown".into(),
            value: vec![],
        };
        assert!(matches!(
            decode_options(Some(&unknown)),
            Err(CheckpointError::UnsupportedType(_))
        ));
    }

    #[test]
    fn restore_args_detach_with_pid_file() {
        let restore = RestoreRequest::new("/images/c1", "").unwrap();
        let options = SpawnOptions {
            pid_file: Path::new("/bundle/init.pid"),
            console_socket: None,
            no_pivot: false,
            no_new_keyring: false,
        };
        assert_eq!(
            strings(&restore_args(&restore, Path::new("/bundle"), &options)),
            [
                "restore",
                "--image-path",
                "/images/c1",
                "--bundle",
                "/bundle",
                "--detach",
                "--no-subreaper",
                "--pid-file",
                "/bundle/init.pid"
            ]
        );
    }

    #[test]
    fn restore_args_with_work_console_no_pivot() {
        let restore = RestoreRequest::new("/images/c1", "/criu/work").unwrap();
        let options = SpawnOptions {
            pid_file: Path::new("/b/init.pid"),
            console_socket: Some(Path::new("/tmp/console.sock")),
            no_pivot: true,
            no_new_keyring: true,
        };
        assert_eq!(
            strings(&restore_args(&restore, Path::new("/b"), &options)),
            [
                "restore",
                "--image-path",
                "/images/c1",
                "--work-path",
                "/criu/work",
                "--bundle",
                "/b",
                "--detach",
                "--no-subreaper",
                "--pid-file",
                "/b/init.pid",
                "--console-socket",
                "/tmp/console.sock",
                "--no-pivot"
            ]
        );
    }

    #[test]
    fn restore_request_empty_checkpoint() {
        assert_eq!(RestoreRequest::new("", "/criu/work"), None);
    }
}
