//! The container's root filesystem: mount propagation, the spec's mounts,
//! devices, `/dev` symlinks, `pivot_root`, masked and read-only paths.
//!
//! Every path inside the rootfs is resolved below an open handle of the
//! rootfs directory, never by name from the host's root (see [`resolve`]).
//! Mounts are made with the new mount API (`open_tree`, `fsopen`,
//! `fsmount`, `mount_setattr`, `move_mount`) onto the resolved fd, which
//! needs Linux 5.12 or later.

mod cgroup;
mod copyup;
mod devices;
pub mod idmap;
mod mount;
pub use mount::clean_destination;
pub mod mountinfo;
pub mod options;
mod paths;
mod pivot;
pub mod resolve;
mod sys;
mod userns;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

pub use devices::verify_dev_null;
pub use idmap::IdMappedMounts;
pub use resolve::{open_in_root, resolve_in_root, Create, ResolveError, ResolveOptions, Resolved};

/// Errors of preparing the root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A path below the rootfs could not be resolved. `what` names the role
    /// of the path (`mount destination`, `device`, `masked path`...).
    #[error("{what} {path:?}: {source}")]
    Resolve {
        what: &'static str,
        path: PathBuf,
        source: ResolveError,
    },
    /// A system call on a path failed.
    #[error("{what} {path:?}: {op} failed: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        op: String,
        source: io::Error,
    },
    #[error("mount destination {0:?} is not absolute")]
    RelativeDestination(PathBuf),
    /// A spec mount that cannot be made as written.
    #[error("mount destination {path:?}: {reason}")]
    InvalidMount { path: PathBuf, reason: String },
    /// A spec device that cannot be created as written.
    #[error("device {path:?}: {reason}")]
    InvalidDevice { path: PathBuf, reason: String },
    /// A file that is not what its path promises (a fake `/dev/null`, a
    /// `/proc` that is no procfs).
    #[error("{path:?} is not {expected}")]
    Unexpected {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("invalid rootfsPropagation {0:?}: expected shared, slave, private, unbindable, rshared, rslave, rprivate or runbindable")]
    InvalidPropagation(String),
    #[error(
        "the mount namespace is the one of pid 1; mounts are only changed in a new mount namespace"
    )]
    SharedMountNamespace,
}

impl RootfsError {
    pub(crate) fn io(
        what: &'static str,
        path: &Path,
        op: impl Into<String>,
        source: impl Into<io::Error>,
    ) -> Self {
        RootfsError::Io {
            what,
            path: path.to_path_buf(),
            op: op.into(),
            source: source.into(),
        }
    }

    pub(crate) fn resolve(what: &'static str, path: &Path, source: ResolveError) -> Self {
        RootfsError::Resolve {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Returns the OS error number behind the error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            RootfsError::Io { source, .. } => source.raw_os_error(),
            RootfsError::Resolve {
                source: ResolveError::Io { source, .. },
                ..
            } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Facts about the container that rootfs set-up needs beyond the spec.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The container has a mount namespace of its own (new, not joined).
    pub new_mount_namespace: bool,
    /// The container runs in a user namespace, so device nodes are
    /// bind-mounted from the host instead of created with mknod.
    pub user_namespace: bool,
    /// `--no-pivot`: move the rootfs onto `/` and chroot instead of pivot_root.
    pub no_pivot: bool,
}

/// The prepared rootfs, mounted and populated but not yet the root.
#[derive(Debug)]
pub struct Rootfs {
    /// `O_PATH` handle of the rootfs: the root of its bind mount when the
    /// container has a mount namespace, else the directory itself.
    root: OwnedFd,
    /// Host path of the rootfs.
    path: PathBuf,
    options: Options,
    /// `/dev` was populated, so standard streams on the host's `/dev/null`
    /// are switched to the container's after the switch of root.
    dev_populated: bool,
}

impl Rootfs {
    /// Returns the `O_PATH` handle that every path in the rootfs is
    /// resolved below, for callers that add files before [`Rootfs::enter`].
    pub fn handle(&self) -> std::os::fd::BorrowedFd<'_> {
        self.root.as_fd()
    }
}

/// Prepares the rootfs at `rootfs` (absolute) for `spec`. Runs in the
/// container's init, inside its mount namespace, before `createContainer`
/// hooks.
///
/// Without a mount namespace of its own, it only opens the rootfs: no
/// mount is made, no device created.
///
/// A spec with id-mapped mounts needs [`prepare_with`].
pub fn prepare(spec: &Spec, rootfs: &Path, options: Options) -> Result<Rootfs, RootfsError> {
    prepare_with(spec, rootfs, options, &IdMappedMounts::default())
}

/// Prepares the rootfs as [`prepare`] does, attaching the trees of
/// `id_mapped` (made by [`IdMappedMounts::open`] before the clone of the
/// init) in place of the bind mounts they were cloned for.
pub fn prepare_with(
    spec: &Spec,
    rootfs: &Path,
    options: Options,
    id_mapped: &IdMappedMounts,
) -> Result<Rootfs, RootfsError> {
    if !rootfs.is_absolute() {
        return Err(RootfsError::InvalidMount {
            path: rootfs.to_path_buf(),
            reason: "the rootfs path must be absolute".to_string(),
        });
    }
    if !options.new_mount_namespace {
        let root = pivot::open_rootfs(rootfs)?;
        return Ok(Rootfs {
            root,
            path: rootfs.to_path_buf(),
            options,
            dev_populated: false,
        });
    }

    pivot::ensure_own_mount_namespace()?;
    pivot::check_host_proc()?;
    let propagation = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    pivot::set_root_propagation(propagation.as_deref())?;
    let root = pivot::bind_rootfs(rootfs)?;

    let context = mount::MountContext {
        root: root.as_fd(),
        cgroup_namespace: cgroup::has_cgroup_namespace(spec),
        id_mapped,
    };
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for (index, entry) in mounts.iter().enumerate() {
        mount::mount_entry(&context, index, entry)?;
    }

    let dev_populated = !mount::has_dev_bind_mount(mounts);
    if dev_populated {
        let list = devices::device_list(spec)?;
        devices::create_devices(root.as_fd(), &list, options.user_namespace)?;
        devices::setup_ptmx(root.as_fd())?;
        devices::setup_dev_symlinks(root.as_fd())?;
    }

    Ok(Rootfs {
        root,
        path: rootfs.to_path_buf(),
        options,
        dev_populated,
    })
}

impl Rootfs {
    /// Makes the rootfs the process's root and cwd `/`.
    pub fn enter(self) -> Result<(), RootfsError> {
        if !self.options.new_mount_namespace {
            return pivot::chroot_into(self.root.as_fd());
        }
        if self.options.no_pivot {
            pivot::move_root(self.root, &self.path)?;
        } else {
            pivot::pivot_root(self.root)?;
        }
        if self.dev_populated {
            devices::reopen_dev_null()?;
        }
        Ok(())
    }
}

/// Applies what must follow the switch to the new root: the read-only
/// remount of tmpfs mounts and `/dev` that request `ro`, `root.readonly`,
/// read-only paths and masked paths, in the order runc 1.1 applies them.
/// Does nothing without a mount namespace of its own.
pub fn finalize(spec: &Spec, options: Options) -> Result<(), RootfsError> {
    if !options.new_mount_namespace {
        return Ok(());
    }
    let root = paths::open_root()?;
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    paths::remount_delayed_readonly(root.as_fd(), mounts)?;
    let readonly_root = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    if readonly_root {
        paths::set_root_readonly(root.as_fd())?;
    }
    if let Some(linux) = spec.linux() {
        for path in linux.readonly_paths().as_deref().unwrap_or_default() {
            paths::readonly_path(root.as_fd(), Path::new(path))?;
        }
        for path in linux.masked_paths().as_deref().unwrap_or_default() {
            paths::mask_path(root.as_fd(), Path::new(path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
