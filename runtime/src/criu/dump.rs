//! `checkpoint`: dumps a running container's process tree into an image
//! directory with criu.

use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::external;
use super::rpc::{Features, Opts, PageServerInfo, Req, ReqType};
use super::swrk::Swrk;
use super::{check_response, open_dir, Criu, CriuError, ManageCgroupsMode, LOG_LEVEL, MIN_VERSION};
use crate::container::{Container, Status};
use crate::state::Lock;
use crate::{Error, Result};

/// File in the image directory that lists the init's stdio as
/// `/proc/PID/fd/N` links read at dump time, for restore to reconnect pipes.
pub const DESCRIPTORS_FILE: &str = "descriptors.json";
/// Copy of the container's record in the image directory.
pub const STATE_COPY_FILE: &str = "hull-state.json";
/// Name of criu's log in the work directory.
pub const LOG_FILE: &str = "dump.log";

/// The flags of `checkpoint`.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    pub image_path: PathBuf,
    /// Directory for criu's log and temporary files, or the image directory
    /// when `None`.
    pub work_path: Option<PathBuf>,
    /// Previous image directory, relative to `image_path` as criu takes it.
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub lazy_pages: bool,
    /// Descriptor that receives one `\0` byte once the lazy-pages server
    /// listens.
    pub status_fd: Option<RawFd>,
    /// `ADDRESS:PORT` of a criu page server that receives the memory pages.
    pub page_server: Option<String>,
    pub file_locks: bool,
    pub pre_dump: bool,
    pub manage_cgroups_mode: Option<ManageCgroupsMode>,
    /// Clone flags of namespaces that criu dumps without their contents.
    pub empty_ns: u32,
    pub auto_dedup: bool,
}

/// Container details that go into the dump request.
#[derive(Debug, Clone, Default)]
pub struct DumpTarget {
    pub pid: i32,
    pub rootfs: PathBuf,
    /// The v1 freezer cgroup, which criu freezes the tree with.
    pub freeze_cgroup: Option<PathBuf>,
    pub external: Vec<String>,
}

/// Parses `--page-server ADDRESS:PORT`.
pub fn parse_page_server(value: &str) -> Result<PageServerInfo, CriuError> {
    let invalid = |reason: &str| CriuError::InvalidFlag {
        flag: "--page-server",
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let (address, port) = value
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected ADDRESS:PORT"))?;
    if address.is_empty() {
        return Err(invalid("the address is empty"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| invalid("the port is not a number from 0 to 65535"))?;
    Ok(PageServerInfo {
        address: Some(address.to_string()),
        port: Some(i32::from(port)),
        ..Default::default()
    })
}

/// Builds the `DUMP` or `PRE_DUMP` request. The directory descriptors are
/// the numbers criu inherits.
pub fn dump_request(
    options: &CheckpointOptions,
    target: &DumpTarget,
    images_fd: RawFd,
    work_fd: Option<RawFd>,
) -> Result<Req, CriuError> {
    if options.lazy_pages && options.pre_dump {
        return Err(CriuError::InvalidFlag {
            flag: "--lazy-pages",
            value: "true".into(),
            reason: "--lazy-pages and --pre-dump exclude each other".into(),
        });
    }
    let mut opts = Opts {
        images_dir_fd: images_fd,
        work_dir_fd: work_fd,
        pid: Some(target.pid),
        log_level: Some(LOG_LEVEL),
        log_file: Some(LOG_FILE.into()),
        root: Some(target.rootfs.display().to_string()),
        manage_cgroups: Some(true),
        notify_scripts: Some(true),
        orphan_pts_master: Some(true),
        leave_running: Some(options.leave_running),
        tcp_established: Some(options.tcp_established),
        ext_unix_sk: Some(options.ext_unix_sk),
        shell_job: Some(options.shell_job),
        file_locks: Some(options.file_locks),
        auto_dedup: Some(options.auto_dedup),
        empty_ns: Some(options.empty_ns),
        external: target.external.clone(),
        freeze_cgroup: target
            .freeze_cgroup
            .as_ref()
            .map(|p| p.display().to_string()),
        manage_cgroups_mode: options.manage_cgroups_mode.map(|m| m.rpc() as i32),
        ..Default::default()
    };
    if let Some(parent) = &options.parent_path {
        opts.parent_img = Some(parent.display().to_string());
        opts.track_mem = Some(true);
    }
    if options.pre_dump {
        opts.track_mem = Some(true);
    }
    if let Some(server) = &options.page_server {
        opts.ps = Some(parse_page_server(server)?);
    }
    if options.lazy_pages {
        opts.lazy_pages = Some(true);
    }
    let kind = if options.pre_dump {
        ReqType::PreDump
    } else {
        ReqType::Dump
    };
    Ok(Req {
        r#type: kind as i32,
        opts: Some(opts),
        ..Default::default()
    })
}

/// Checks that `--status-fd` is open for writing.
fn check_status_fd(fd: RawFd) -> Result<(), CriuError> {
    // SAFETY: the descriptor is only borrowed for the fcntl call below, and
    // the caller keeps it open.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags = rustix::fs::fcntl_getfl(borrowed).map_err(|e| CriuError::InvalidFlag {
        flag: "--status-fd",
        value: fd.to_string(),
        reason: format!("the descriptor is not open: {e}"),
    })?;
    let mode = flags & rustix::fs::OFlags::ACCMODE;
    if mode == rustix::fs::OFlags::RDONLY {
        return Err(CriuError::InvalidFlag {
            flag: "--status-fd",
            value: fd.to_string(),
            reason: "the descriptor is not writable".into(),
        });
    }
    Ok(())
}

/// Reads where the init's stdio points: `/dev/null`, `pipe:[INODE]`...
fn stdio_links(pid: i32) -> Vec<String> {
    (0..3)
        .map(|fd| {
            fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// Dumps the container. Without `leave_running` or `pre_dump`, criu ends
/// the container's processes and the container is then deleted, so its id
/// is free for `restore`.
pub fn checkpoint(container: &Container, criu: &Criu, options: &CheckpointOptions) -> Result<()> {
    let lock = Lock::acquire(&container.root, container.id())?;
    let status = container.status();
    if matches!(status, Status::Created | Status::Stopped | Status::Creating) {
        return Err(Error::BadStatus {
            action: "checkpoint",
            id: container.id().to_string(),
            status: status.as_str(),
        });
    }
    if let Some(fd) = options.status_fd {
        check_status_fd(fd)?;
    }
    if let Some(parent) = &options.parent_path {
        check_parent_path(parent, &options.image_path)?;
    }
    criu.require_version(MIN_VERSION)?;
    if options.pre_dump || options.parent_path.is_some() {
        criu.require_features(Features {
            mem_track: Some(true),
            ..Default::default()
        })?;
    }
    if options.lazy_pages {
        criu.require_features(Features {
            lazy_pages: Some(true),
            ..Default::default()
        })?;
    }

    let state = &container.state;
    let images = open_dir(&options.image_path, true)?;
    let work = match &options.work_path {
        Some(path) => Some(open_dir(path, true)?),
        None => None,
    };
    let log = options
        .work_path
        .as_deref()
        .unwrap_or(&options.image_path)
        .join(LOG_FILE);

    let pid = state.init_pid;
    let container_root = PathBuf::from(format!("/proc/{pid}/root"));
    let is_file = |path: &Path| {
        let inside = container_root.join(path.strip_prefix("/").unwrap_or(path));
        fs::metadata(inside).is_ok_and(|m| !m.is_dir())
    };
    let mut external = external::dump_mounts(&state.config, &state.cgroup, &is_file);
    external.extend(external::dump_namespaces(&state.config)?);
    let target = DumpTarget {
        pid,
        rootfs: state.rootfs.clone(),
        freeze_cgroup: state.cgroup.paths().remove("freezer"),
        external,
    };
    let request = dump_request(
        options,
        &target,
        images.as_raw_fd(),
        work.as_ref().map(|w| w.as_raw_fd()),
    )?;

    let descriptors = serde_json::to_vec(&stdio_links(pid)).expect("strings encode");
    let path = options.image_path.join(DESCRIPTORS_FILE);
    fs::write(&path, descriptors).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    let copy = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::Message(format!("encode state of {}: {e}", state.id)))?;
    let path = options.image_path.join(STATE_COPY_FILE);
    fs::write(&path, copy).map_err(|e| Error::io(format!("write {}", path.display()), e))?;

    let mut pass = vec![images.as_raw_fd()];
    pass.extend(work.as_ref().map(|w| w.as_raw_fd()));
    let mut swrk = Swrk::spawn(&criu.binary, &pass)?;
    let mut status_fd = options.status_fd;
    let response = swrk.call(&request, |_, notify| -> Result<()> {
        if notify.script.as_deref() == Some("status-ready") {
            if let Some(fd) = status_fd.take() {
                // SAFETY: the caller handed the descriptor to this dump,
                // which closes it after the single status byte, as runc
                // does.
                let file = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                std::io::Write::write_all(&mut &file, b"\0")
                    .map_err(|e| Error::io(format!("write to --status-fd {fd}"), e))?;
            }
        }
        Ok(())
    })?;
    swrk.finish();
    let kind = ReqType::try_from(request.r#type).unwrap_or(ReqType::Dump);
    check_response(kind, &response, &log)?;

    if options.leave_running || options.pre_dump {
        return Ok(());
    }
    // criu has sent SIGKILL to the tree. `delete` waits until every process
    // of the cgroup is gone before it removes the cgroup, and it takes the
    // lock itself.
    drop(lock);
    crate::lifecycle::delete(container, true)
}
/// Checks `--parent-path`: criu reads it relative to the image directory,
/// so it must be relative and name an existing pre-dump there.
fn check_parent_path(parent: &std::path::Path, image_path: &std::path::Path) -> Result<()> {
    if parent.is_absolute() {
        return Err(Error::Spec(format!(
            "--parent-path {} must be relative to --image-path {}",
            parent.display(),
            image_path.display()
        )));
    }
    let resolved = image_path.join(parent);
    if !resolved.is_dir() {
        return Err(Error::Spec(format!(
            "--parent-path {}: {} is not a directory with a pre-dump",
            parent.display(),
            resolved.display()
        )));
    }
    Ok(())
}
