//! The spec's mounts, made with the new mount API onto destinations
//! resolved below the rootfs handle.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Mount;
use rustix::fs::{self as rfs, FileType, Mode, OFlags, CWD};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MoveMountFlags, OpenTreeFlags,
};

use super::cgroup;
use super::copyup;
use super::idmap::{is_id_mapped, IdMappedMounts};
use super::options::{parse_mount_options, split_data, MountOptions, MS_REC, MS_REMOUNT};
use super::resolve::{resolve_in_root, Create, ResolveOptions, Resolved};
use super::sys::{self, MountAttr, ATTR_RDONLY, PROC_SUPER_MAGIC};
use super::RootfsError;

const WHAT: &str = "mount destination";

/// Paths below `/proc` that may be mounted over, as runc 1.1 allows for
/// the files lxcfs emulates.
const PROC_MOUNT_ALLOW_LIST: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// State shared by every mount of one container.
pub struct MountContext<'a> {
    /// Handle of the rootfs bind mount.
    pub root: BorrowedFd<'a>,
    /// The container has a cgroup namespace, so cgroup v1 hierarchies are
    /// mounted instead of bind-mounted.
    pub cgroup_namespace: bool,
    /// Trees the runtime cloned on the host for the spec's bind mounts.
    pub id_mapped: &'a IdMappedMounts,
}

/// A file system to mount with `fsopen`.
pub struct FsMount<'a> {
    pub dest: &'a Path,
    pub fs_type: &'a str,
    pub source: Option<&'a str>,
    pub options: &'a MountOptions,
}

/// Lexically cleans an absolute destination: drops `.`, applies `..`
/// without going above `/`.
pub fn clean_destination(path: &Path) -> PathBuf {
    let mut clean = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    clean
}

pub fn is_bind_entry(entry: &Mount) -> bool {
    let options = entry.options().as_deref().unwrap_or_default();
    entry.typ().as_deref() == Some("bind") || parse_mount_options(options).is_bind()
}

/// Returns true when a spec mount bind-mounts over `/dev`, in which case
/// runc 1.1 leaves `/dev` alone: no devices, no symlinks.
pub fn has_dev_bind_mount(mounts: &[Mount]) -> bool {
    mounts
        .iter()
        .any(|m| is_bind_entry(m) && clean_destination(m.destination()) == Path::new("/dev"))
}

/// Makes one spec mount, the one at `index` in the spec's `mounts`.
pub fn mount_entry(
    context: &MountContext<'_>,
    index: usize,
    entry: &Mount,
) -> Result<(), RootfsError> {
    let dest = entry.destination();
    if !dest.is_absolute() {
        return Err(RootfsError::RelativeDestination(dest.clone()));
    }
    let options = parse_mount_options(entry.options().as_deref().unwrap_or_default());
    let fs_type = entry.typ().as_deref().unwrap_or_default();
    let source = entry.source().as_deref();

    if fs_type == "bind" || options.is_bind() {
        let Some(source) = source else {
            return Err(invalid(dest, "a bind mount needs a source"));
        };
        if let Some(tree) = context.id_mapped.tree(index) {
            let tree = tree
                .try_clone_to_owned()
                .map_err(|e| RootfsError::io(WHAT, dest, "dup of the prepared tree", e))?;
            return attach_tree(context.root, dest, source, tree, &options);
        }
        if is_id_mapped(entry) {
            return Err(invalid(
                dest,
                "the mount is id-mapped but the runtime prepared no id-mapped tree for it",
            ));
        }
        return bind_mount(context.root, dest, source, &options);
    }
    if is_id_mapped(entry) {
        return Err(invalid(
            dest,
            "uidMappings, gidMappings, idmap and ridmap apply to bind mounts only",
        ));
    }
    // NOTE: remounting an existing mount from the spec (runc passes
    // MS_REMOUNT on to mount(2)) has no fsopen counterpart here.
    if options.flags & MS_REMOUNT != 0 {
        return Err(invalid(
            dest,
            "option \"remount\" is supported on bind mounts only",
        ));
    }
    if options.copy_up && fs_type != "tmpfs" {
        return Err(invalid(
            dest,
            "option \"tmpcopyup\" applies to tmpfs mounts only",
        ));
    }
    let source = source.and_then(Path::to_str);
    match fs_type {
        "" => Err(invalid(dest, "the mount has no type")),
        "cgroup" => cgroup::mount_cgroup(context, dest, source, &options),
        _ => mount_filesystem(
            context.root,
            &FsMount {
                dest,
                fs_type,
                source,
                options: &options,
            },
        ),
    }
}

fn invalid(dest: &Path, reason: &str) -> RootfsError {
    RootfsError::InvalidMount {
        path: dest.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Bind-mounts the host path `source` onto `dest` in the rootfs, with the
/// attributes and propagation of `options`.
pub fn bind_mount(
    root: BorrowedFd<'_>,
    dest: &Path,
    source: &Path,
    options: &MountOptions,
) -> Result<(), RootfsError> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if options.is_recursive() {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    // The source is a host path, resolved on the host as the caller wrote it.
    let tree = open_tree(CWD, source, flags)
        .map_err(|e| RootfsError::io("mount source", source, "open_tree", e))?;
    attach_tree(root, dest, source, tree, options)
}

/// Attaches `tree`, a detached clone of the host path `source`, onto `dest`
/// in the rootfs, with the attributes and propagation of `options`.
fn attach_tree(
    root: BorrowedFd<'_>,
    dest: &Path,
    source: &Path,
    tree: OwnedFd,
    options: &MountOptions,
) -> Result<(), RootfsError> {
    let stat = rfs::fstat(&tree).map_err(|e| RootfsError::io("mount source", source, "stat", e))?;
    let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;

    let create = if is_dir {
        Create::Directory
    } else {
        Create::File
    };
    let target = resolve_in_root(root, dest, ResolveOptions::create(create))
        .map_err(|e| RootfsError::resolve(WHAT, dest, e))?;
    check_proc_mount(dest, &target, || is_procfs(tree.as_fd()))?;

    let attr = options.mount_attr();
    if !attr.is_empty() {
        sys::mount_setattr_fd(tree.as_fd(), false, &attr)
            .map_err(|e| RootfsError::io(WHAT, dest, "mount_setattr", e))?;
    }
    attach(tree, &target, dest, options)
}

/// Applies the recursive attributes, moves the detached mount `mount` onto
/// `target` and changes its propagation as `options` ask.
fn attach(
    mount: OwnedFd,
    target: &Resolved,
    dest: &Path,
    options: &MountOptions,
) -> Result<(), RootfsError> {
    if !options.recursive_attr.is_empty() {
        sys::mount_setattr_fd(mount.as_fd(), true, &options.recursive_attr)
            .map_err(|e| RootfsError::io(WHAT, dest, "mount_setattr (recursive)", e))?;
    }
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    move_mount(&mount, "", &target.fd, "", flags)
        .map_err(|e| RootfsError::io(WHAT, dest, "move_mount", e))?;
    apply_propagation(mount.as_fd(), dest, &options.propagation)
}

/// Changes the propagation of the mount `fd` is the root of, once per
/// entry of `propagation` (`MS_SHARED`... with `MS_REC` for the subtree).
pub fn apply_propagation(
    fd: BorrowedFd<'_>,
    dest: &Path,
    propagation: &[u64],
) -> Result<(), RootfsError> {
    for &flags in propagation {
        let attr = MountAttr {
            propagation: flags & !MS_REC,
            ..MountAttr::default()
        };
        sys::mount_setattr_fd(fd, flags & MS_REC != 0, &attr)
            .map_err(|e| RootfsError::io(WHAT, dest, "change of propagation", e))?;
    }
    Ok(())
}

fn is_procfs(fd: BorrowedFd<'_>) -> bool {
    sys::fs_type_is(fd, PROC_SUPER_MAGIC)
}

/// Rejects mounts over `/proc` or below it, as runc 1.1 does: `/proc`
/// itself only takes a procfs, and below it only the allow-list.
fn check_proc_mount(
    dest: &Path,
    target: &Resolved,
    source_is_proc: impl FnOnce() -> bool,
) -> Result<(), RootfsError> {
    let Ok(below) = target.path.strip_prefix("/proc") else {
        return Ok(());
    };
    if below.as_os_str().is_empty() {
        if source_is_proc() {
            return Ok(());
        }
        return Err(invalid(dest, "only a procfs may be mounted on /proc"));
    }
    if PROC_MOUNT_ALLOW_LIST
        .iter()
        .any(|allowed| target.path == Path::new(allowed))
    {
        return Ok(());
    }
    Err(invalid(
        dest,
        &format!(
            "{:?} is inside /proc and not a path that may be mounted over",
            target.path
        ),
    ))
}

/// Builds the error of a failed file system context call, with the
/// messages the kernel logged on the context.
fn fsconfig_error(
    fs_fd: &OwnedFd,
    dest: &Path,
    op: String,
    errno: rustix::io::Errno,
) -> RootfsError {
    let log = sys::read_fs_context_log(fs_fd.as_fd());
    let op = if log.is_empty() {
        op
    } else {
        format!("{op} ({log})")
    };
    RootfsError::io(WHAT, dest, op, errno)
}

/// Creates a file system with `fsopen`/`fsconfig`/`fsmount` and attaches
/// it at `fs.dest`.
pub fn mount_filesystem(root: BorrowedFd<'_>, fs: &FsMount<'_>) -> Result<(), RootfsError> {
    let dest = fs.dest;
    let pseudo = matches!(fs.fs_type, "proc" | "sysfs");
    let resolve_options = ResolveOptions {
        create: Create::Directory,
        // A symlink at /proc or /sys could redirect the mount, so runc rejects
        // anything but a directory there.
        reject_final_symlink: pseudo,
    };
    let target = resolve_in_root(root, dest, resolve_options).map_err(|e| match e {
        super::ResolveError::Symlink { .. } => invalid(
            dest,
            &format!(
                "{} must be mounted on a directory, not a symlink",
                fs.fs_type
            ),
        ),
        e => RootfsError::resolve(WHAT, dest, e),
    })?;
    let stat = rfs::fstat(&target.fd).map_err(|e| RootfsError::io(WHAT, dest, "stat", e))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return Err(invalid(
            dest,
            &format!("{} must be mounted on a directory", fs.fs_type),
        ));
    }
    if !pseudo && !matches!(fs.fs_type, "tmpfs" | "mqueue") {
        let source_is_proc = || {
            fs.source
                .is_some_and(|s| sys::path_fs_type_is(Path::new(s), PROC_SUPER_MAGIC))
        };
        check_proc_mount(dest, &target, source_is_proc)?;
    }
    // A read-only tmpfs or /dev would stop the files that follow (devices,
    // the console), so `finalize` makes those read-only at the end.
    let delay_readonly = fs.fs_type == "tmpfs" || clean_destination(dest) == Path::new("/dev");

    let fs_fd = fsopen(fs.fs_type, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| RootfsError::io(WHAT, dest, format!("fsopen {}", fs.fs_type), e))?;
    if let Some(source) = fs.source.filter(|s| !s.is_empty()) {
        fsconfig_set_string(&fs_fd, "source", source)
            .map_err(|e| fsconfig_error(&fs_fd, dest, format!("fsconfig source={source}"), e))?;
    }
    for flag in fs.options.superblock_flags() {
        if delay_readonly && flag == "ro" {
            continue;
        }
        fsconfig_set_flag(&fs_fd, flag)
            .map_err(|e| fsconfig_error(&fs_fd, dest, format!("fsconfig {flag}"), e))?;
    }
    for (key, value) in split_data(&fs.options.data) {
        let result = match &value {
            Some(value) => fsconfig_set_string(&fs_fd, key.as_str(), value.as_str()),
            None => fsconfig_set_flag(&fs_fd, key.as_str()),
        };
        result.map_err(|e| {
            let param = match &value {
                Some(value) => format!("{key}={value}"),
                None => key.clone(),
            };
            fsconfig_error(&fs_fd, dest, format!("fsconfig {param}"), e)
        })?;
    }
    fsconfig_create(&fs_fd)
        .map_err(|e| fsconfig_error(&fs_fd, dest, format!("creating {}", fs.fs_type), e))?;

    let mut attr = fs.options.mount_attr();
    if delay_readonly {
        attr.attr_set &= !ATTR_RDONLY;
    }
    let mount = fsmount(&fs_fd, FsMountFlags::FSMOUNT_CLOEXEC, attr.fsmount_flags())
        .map_err(|e| fsconfig_error(&fs_fd, dest, "fsmount".to_string(), e))?;

    // A tmpfs over an existing directory takes that directory's mode unless
    // the options set `mode`, as runc 1.1 does with a chmod after the mount.
    let has_mode = split_data(&fs.options.data)
        .iter()
        .any(|(key, _)| key == "mode");
    if fs.fs_type == "tmpfs" && !target.created && !has_mode {
        let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
        let dir = rfs::openat(
            &mount,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RootfsError::io(WHAT, dest, "open of the new tmpfs", e))?;
        rfs::fchmod(&dir, mode).map_err(|e| RootfsError::io(WHAT, dest, "chmod", e))?;
    }
    if fs.options.copy_up {
        copyup::copy_tree(target.fd.as_fd(), mount.as_fd(), dest)?;
    }
    attach(mount, &target, dest, fs.options)
}
