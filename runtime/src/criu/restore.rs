//! `restore`: recreates a container from a checkpoint image. The runtime
//! makes the container's directory and cgroup as `create` does, then criu
//! restores the process tree into that cgroup with the restored init as
//! the runtime's child.

use std::fs;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use super::dump::{DESCRIPTORS_FILE, STATE_COPY_FILE};
use super::external;
use super::rpc::{CgroupRoot, Features, InheritFd, Opts, Req, ReqType};
use super::swrk::Swrk;
use super::{check_response, open_dir, Criu, CriuError, ManageCgroupsMode, LOG_LEVEL, MIN_VERSION};
use crate::container::Container;
use crate::hooks::{self, HookState};
use crate::process::{self, CreateOptions};
use crate::state::State;
use crate::{Error, Result};

/// Name of criu's log in the work directory.
pub const LOG_FILE: &str = "restore.log";
/// criu 3.16 added `lsm_profile`.
const LSM_PROFILE_VERSION: i32 = 31600;

/// The flags of `restore`.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Id, bundle, `--root`, `--pid-file` and `--console-socket`.
    pub create: CreateOptions,
    pub image_path: PathBuf,
    /// Directory for criu's log, or the image directory when `None`.
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<ManageCgroupsMode>,
    pub empty_ns: u32,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
    /// `apparmor:PROFILE` or `selinux:LABEL` for the restored processes.
    pub lsm_profile: Option<String>,
    /// The caller returns at once, so a terminal container needs
    /// `--console-socket` to hand its pty master to.
    pub detach: bool,
}

/// Builds the `RESTORE` request, without the cgroup roots, which depend
/// on the running criu.
pub fn restore_request(
    options: &RestoreOptions,
    root: &Path,
    images_fd: RawFd,
    work_fd: Option<RawFd>,
    external: Vec<String>,
    inherit_fd: Vec<InheritFd>,
) -> Req {
    let opts = Opts {
        images_dir_fd: images_fd,
        work_dir_fd: work_fd,
        evasive_devices: Some(true),
        log_level: Some(LOG_LEVEL),
        log_file: Some(LOG_FILE.into()),
        rst_sibling: Some(true),
        root: Some(root.display().to_string()),
        manage_cgroups: Some(true),
        notify_scripts: Some(true),
        orphan_pts_master: Some(true),
        shell_job: Some(options.shell_job),
        ext_unix_sk: Some(options.ext_unix_sk),
        tcp_established: Some(options.tcp_established),
        file_locks: Some(options.file_locks),
        empty_ns: Some(options.empty_ns),
        auto_dedup: Some(options.auto_dedup),
        lazy_pages: Some(options.lazy_pages),
        lsm_profile: options.lsm_profile.clone(),
        manage_cgroups_mode: options.manage_cgroups_mode.map(|m| m.rpc() as i32),
        external,
        inherit_fd,
        ..Default::default()
    };
    Req {
        r#type: ReqType::Restore as i32,
        opts: Some(opts),
        ..Default::default()
    }
}

/// Maps each stdio entry of `descriptors.json` that is a pipe to the same
/// descriptor number of criu, which inherits the runtime's stdio.
pub fn stdio_inherit_fds(descriptors: &[String]) -> Vec<InheritFd> {
    descriptors
        .iter()
        .enumerate()
        .take(3)
        .filter(|(_, link)| link.starts_with("pipe:"))
        .map(|(fd, link)| InheritFd {
            key: link.clone(),
            fd: fd as i32,
        })
        .collect()
}

/// Converts the controller-to-cgroup lines of `/proc/PID/cgroup` for the
/// v1 hierarchies into criu's cgroup roots.
pub fn cgroup_roots(proc_cgroup: &str) -> Vec<CgroupRoot> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            (!controllers.is_empty()).then(|| CgroupRoot {
                ctrl: Some(controllers.to_string()),
                path: path.to_string(),
            })
        })
        .collect()
}

/// A recursive bind mount of the rootfs, where criu restores the mount tree,
/// which is unmounted and removed on drop. It lies outside `--root` so that
/// removing a container's directory can never descend into the rootfs.
struct RootMount {
    path: PathBuf,
    mounted: bool,
}

impl RootMount {
    fn new(rootfs: &Path) -> Result<RootMount> {
        let template = std::env::temp_dir().join("hull-criu-root-XXXXXX");
        let path = nix::unistd::mkdtemp(&template)
            .map_err(|e| Error::sys(format!("create {}", template.display()), e))?;
        let mut guard = RootMount {
            path,
            mounted: false,
        };
        mount(
            Some(rootfs),
            &guard.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| {
            Error::sys(
                format!("bind {} on {}", rootfs.display(), guard.path.display()),
                e,
            )
        })?;
        guard.mounted = true;
        mount(
            None::<&str>,
            &guard.path,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| Error::sys(format!("make {} private", guard.path.display()), e))?;
        Ok(guard)
    }
}

impl Drop for RootMount {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = umount2(&self.path, MntFlags::MNT_DETACH) {
                tracing::warn!("unmount {}: {e}", self.path.display());
                return;
            }
        }
        // remove_dir, never remove_dir_all: the rootfs may still be below.
        if let Err(e) = fs::remove_dir(&self.path) {
            tracing::warn!("remove {}: {e}", self.path.display());
        }
    }
}

/// Sends the pty master over the `--console-socket` connection.
fn send_master(socket: &OwnedFd, master: &OwnedFd) -> Result<()> {
    let fds = [master.as_raw_fd()];
    let name = b"/dev/ptmx";
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::sys("send the console master over the console socket", e))?;
    Ok(())
}

/// Checks that the bundle mounts every bind-mount destination the image was
/// dumped with, because criu would fail on the missing one with a less clear
/// message.
fn check_image_mounts(image_path: &Path, restore_external: &[String]) -> Result<()> {
    let path = image_path.join(STATE_COPY_FILE);
    let Ok(text) = fs::read(&path) else {
        return Ok(());
    };
    let dumped: State = serde_json::from_slice(&text)
        .map_err(|e| Error::Message(format!("corrupt {}: {e}", path.display())))?;
    let is_file = |_: &Path| false;
    for option in external::dump_mounts(&dumped.config, &dumped.cgroup, &is_file) {
        let key = option.split_once("]:").map_or(option.as_str(), |(k, _)| k);
        if !restore_external
            .iter()
            .any(|o| o.starts_with(&format!("{key}]:")))
        {
            return Err(Error::Spec(format!(
                "the checkpoint in {} has the external mount {}], which the bundle's config.json lacks",
                image_path.display(),
                key
            )));
        }
    }
    Ok(())
}

/// Restores the container from `options.image_path`. Returns the container
/// and, for a terminal container without `--console-socket`, the pty
/// master. On failure nothing of the container is left.
pub fn restore(criu: &Criu, options: &RestoreOptions) -> Result<(Container, Option<OwnedFd>)> {
    let create = &options.create;
    let config = process::load_config(create)?;
    let spec = &config.spec;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let console = match (&create.console_socket, terminal) {
        (Some(path), true) => Some(crate::console::connect(path)?),
        (Some(_), false) => {
            return Err(Error::Spec(
                "--console-socket was given but process.terminal is false".into(),
            ))
        }
        (None, true) if options.detach => {
            return Err(Error::Spec(
                "process.terminal is true but no --console-socket was given".into(),
            ))
        }
        (None, _) => None,
    };
    let descriptors_path = options.image_path.join(DESCRIPTORS_FILE);
    let descriptors: Vec<String> = fs::read(&descriptors_path)
        .map_err(|e| Error::io(format!("read {}", descriptors_path.display()), e))
        .and_then(|text| {
            serde_json::from_slice(&text)
                .map_err(|e| Error::Message(format!("corrupt {}: {e}", descriptors_path.display())))
        })?;
    let version = criu.require_version(MIN_VERSION)?;
    if options.lsm_profile.is_some() && version.number() < LSM_PROFILE_VERSION {
        return Err(CriuError::Unsupported("--lsm-profile, which needs criu 3.16 or newer").into());
    }
    if options.lazy_pages {
        criu.require_features(Features {
            lazy_pages: Some(true),
            ..Default::default()
        })?;
    }
    let cgroup = process::cgroup_manager(&config, &create.id, create.systemd_cgroup)?;
    let external = external::restore_mounts(spec, &cgroup);
    check_image_mounts(&options.image_path, &external)?;
    let namespaces = external::restore_namespaces(spec)?;
    let images = open_dir(&options.image_path, false)?;
    let work = match &options.work_path {
        Some(path) => Some(open_dir(path, true)?),
        None => None,
    };
    let log = options
        .work_path
        .as_deref()
        .unwrap_or(&options.image_path)
        .join(LOG_FILE);

    // Dropped in reverse order: criu is reaped and the rootfs unmounted
    // before the cleanup kills the init and removes cgroup and directory.
    let (_dir, mut cleanup, _lock) = process::make_container_dir(create)?;
    let linux = spec.linux().clone().unwrap_or_default();
    cgroup.create(linux.resources().as_ref())?;
    cleanup.cgroup = Some(cgroup.clone());
    let root_mount = RootMount::new(&config.rootfs)?;

    let mut inherit_fd = stdio_inherit_fds(&descriptors);
    let mut pass = vec![images.as_raw_fd()];
    pass.extend(work.as_ref().map(|w| w.as_raw_fd()));
    for (key, file) in &namespaces.inherited {
        pass.push(file.as_raw_fd());
        inherit_fd.push(InheritFd {
            key: key.clone(),
            fd: file.as_raw_fd(),
        });
    }
    let mut request = restore_request(
        options,
        &root_mount.path,
        images.as_raw_fd(),
        work.as_ref().map(|w| w.as_raw_fd()),
        external,
        inherit_fd,
    );
    let mut swrk = Swrk::spawn(&criu.binary, &pass)?;
    // criu restores the tree into its own cgroups, so it enters the
    // container's cgroup first.
    cgroup.add_process(swrk.pid())?;
    let proc_cgroup = format!("/proc/{}/cgroup", swrk.pid());
    let text = fs::read_to_string(&proc_cgroup)
        .map_err(|e| Error::io(format!("read {proc_cgroup}"), e))?;
    if let Some(opts) = request.opts.as_mut() {
        opts.join_ns = namespaces.join.clone();
        opts.cg_root = cgroup_roots(&text);
    }

    let own_pid_namespace = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_none());
    let mut state: Option<State> = None;
    let mut master: Option<OwnedFd> = None;
    let response = swrk.call(&request, |swrk, notify| -> Result<()> {
        match notify.script.as_deref() {
            Some("setup-namespaces") => {
                let hook_state = HookState {
                    oci_version: spec.version(),
                    id: &create.id,
                    status: "creating",
                    pid: notify.pid,
                    bundle: &config.bundle,
                    annotations: spec
                        .annotations()
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                };
                hooks::run(hooks::Kind::Prestart, spec, &hook_state)?;
                hooks::run(hooks::Kind::CreateRuntime, spec, &hook_state)?;
            }
            Some("post-restore") => {
                let pid = notify.pid.unwrap_or(0);
                cleanup.child = Some(Pid::from_raw(pid));
                let restored = process::new_state(
                    &create.id,
                    &config,
                    pid,
                    cgroup.clone(),
                    own_pid_namespace,
                )?;
                process::record(create, &restored)?;
                state = Some(restored);
            }
            Some("orphan-pts-master") => master = Some(swrk.receive_fd()?),
            _ => {}
        }
        Ok(())
    });
    let response = response?;
    swrk.finish();
    check_response(ReqType::Restore, &response, &log)?;
    let state = match state {
        Some(state) => state,
        None => {
            let pid = response.restore.as_ref().map_or(0, |r| r.pid);
            cleanup.child = Some(Pid::from_raw(pid));
            let restored =
                process::new_state(&create.id, &config, pid, cgroup.clone(), own_pid_namespace)?;
            process::record(create, &restored)?;
            restored
        }
    };
    drop(root_mount);
    if let (Some(socket), Some(master)) = (&console, &master) {
        send_master(socket, master)?;
    }
    cleanup.armed = false;
    let master = if console.is_some() { None } else { master };
    Ok((
        Container {
            root: create.root.clone(),
            state,
        },
        master,
    ))
}
