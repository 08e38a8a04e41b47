//! Resolution of container paths below an open handle of the root.
//!
//! The walk opens one component at a time with `O_PATH | O_NOFOLLOW`
//! relative to the previous component's fd, so no name is ever resolved
//! from the host's root. Symlinks are read and expanded here, never
//! followed by the kernel: an absolute target restarts at the handle (chroot
//! semantics), and `..` walks back the stack of opened directories instead
//! of opening `..`. A `..` that comes from a symlink target and would climb
//! above the handle is an error. A `..` above the handle written in the
//! requested path itself stays at the handle, like `/..` does in a chroot.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;

/// Maximum number of symlinks one resolution expands (`MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Errors of resolving a path below a root handle.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("symlink {link:?} leads out of the rootfs")]
    Escape { link: PathBuf },
    #[error("too many levels of symbolic links")]
    SymlinkLoop,
    #[error("{path:?} is a symlink")]
    Symlink { path: PathBuf },
    #[error("{path:?} is not a directory")]
    NotDirectory { path: PathBuf },
    #[error("{path:?} changed during resolution")]
    Changed { path: PathBuf },
    #[error("{op} {path:?} failed: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl ResolveError {
    /// Returns true when a component is missing and creation was not requested.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ResolveError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Returns true when a non-directory is found where a directory is needed.
    pub fn is_not_directory(&self) -> bool {
        matches!(self, ResolveError::NotDirectory { .. })
    }
}

/// The kind of object created for a missing final component. Missing
/// intermediate components become directories whenever anything is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Fail with `ENOENT` for a missing component.
    Nothing,
    /// Create directories (mode 0755 before umask).
    Directory,
    /// Create directories up to the parent and an empty file (mode 0644
    /// before umask) as the final component.
    File,
}

/// Options that control how [`resolve_in_root`] treats the path.
#[derive(Debug, Clone, Copy)]
pub struct ResolveOptions {
    /// The kind of object created when components are missing.
    pub create: Create,
    /// True to reject a final component that is a symlink instead of
    /// expanding it.
    pub reject_final_symlink: bool,
}

impl ResolveOptions {
    /// Returns options that open an existing path, expanding every symlink.
    pub const fn existing() -> Self {
        Self {
            create: Create::Nothing,
            reject_final_symlink: false,
        }
    }

    /// Returns options that open the path and create the missing components
    /// as `create` specifies.
    pub const fn create(create: Create) -> Self {
        Self {
            create,
            reject_final_symlink: false,
        }
    }
}

/// A resolved path: an `O_PATH` fd of the final object and where it lies.
#[derive(Debug)]
pub struct Resolved {
    /// `O_PATH` fd of the final object, which is never a symlink.
    pub fd: OwnedFd,
    /// Path of the object below the root, without symlinks or `..`.
    pub path: PathBuf,
    /// True when the final component was created by this resolution.
    pub created: bool,
}

/// Opens `path` below `root` and returns an `O_PATH` fd of the final object.
/// `path` may be absolute or relative: both start at `root`.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    options: ResolveOptions,
) -> Result<OwnedFd, ResolveError> {
    resolve_in_root(root, path, options).map(|resolved| resolved.fd)
}

/// A component still to walk, and the symlink whose target it came from.
struct Pending {
    name: OsString,
    from_link: Option<PathBuf>,
}

fn components_of(path: &Path, from_link: Option<&Path>) -> Vec<Pending> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .map(|name| Pending {
            name,
            from_link: from_link.map(Path::to_path_buf),
        })
        .collect()
}

fn io_error(op: &'static str, path: &Path, errno: Errno) -> ResolveError {
    ResolveError::Io {
        op,
        path: path.to_path_buf(),
        source: errno.into(),
    }
}

fn path_of(names: &[OsString]) -> PathBuf {
    let mut path = PathBuf::from("/");
    path.extend(names);
    path
}

/// Resolves `path` below `root` as described in the module documentation
/// and returns the final object with its symlink-free path.
pub fn resolve_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    options: ResolveOptions,
) -> Result<Resolved, ResolveError> {
    let mut pending: VecDeque<Pending> = components_of(path, None).into();
    // Opened directories below the root, and their names.
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut names: Vec<OsString> = Vec::new();
    let mut symlinks = 0;
    let mut created = false;

    while let Some(Pending { name, from_link }) = pending.pop_front() {
        if name == ".." {
            if stack.pop().is_none() {
                if let Some(link) = from_link {
                    return Err(ResolveError::Escape { link });
                }
            }
            names.pop();
            created = false;
            continue;
        }
        let is_last = pending.is_empty();
        let parent = stack.last().map_or(root, |fd| fd.as_fd());
        let (fd, was_created) = open_component(parent, &name, is_last, options, &names)?;
        let stat = rfs::fstat(&fd).map_err(|e| io_error("stat", &path_of(&names), e))?;
        let file_type = FileType::from_raw_mode(stat.st_mode);

        if file_type == FileType::Symlink {
            let mut link_path = path_of(&names);
            link_path.push(&name);
            if is_last && options.reject_final_symlink {
                return Err(ResolveError::Symlink { path: link_path });
            }
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Err(ResolveError::SymlinkLoop);
            }
            let target = rfs::readlinkat(&fd, "", Vec::new())
                .map_err(|e| io_error("readlink", &link_path, e))?;
            let target = Path::new(OsStr::from_bytes(target.as_bytes()));
            if target.is_absolute() {
                stack.clear();
                names.clear();
            }
            for component in components_of(target, Some(&link_path)).into_iter().rev() {
                pending.push_front(component);
            }
            continue;
        }

        if file_type != FileType::Directory && !pending.is_empty() {
            let mut bad = path_of(&names);
            bad.push(&name);
            return Err(ResolveError::NotDirectory { path: bad });
        }
        stack.push(fd);
        names.push(name);
        created = was_created;
    }

    let resolved_path = path_of(&names);
    let fd = match stack.pop() {
        Some(fd) => fd,
        None => rfs::openat(root, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io_error("open", &resolved_path, e))?,
    };
    verify_reachable(root, &fd, &resolved_path)?;
    Ok(Resolved {
        fd,
        path: resolved_path,
        created,
    })
}

/// Opens `name` in `parent` without following a symlink, creating it when
/// missing and `options` ask for it. Returns the fd and whether it was made.
fn open_component(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    is_last: bool,
    options: ResolveOptions,
    names: &[OsString],
) -> Result<(OwnedFd, bool), ResolveError> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let component_path = || {
        let mut path = path_of(names);
        path.push(name);
        path
    };
    match rfs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => return Ok((fd, false)),
        Err(Errno::NOENT) if options.create != Create::Nothing => {}
        Err(errno) => return Err(io_error("open", &component_path(), errno)),
    }

    let make_file = is_last && options.create == Create::File;
    let result = if make_file {
        let file_flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rfs::openat(parent, name, file_flags, Mode::from_raw_mode(0o644)).map(drop)
    } else {
        rfs::mkdirat(parent, name, Mode::from_raw_mode(0o755))
    };
    let was_created = match result {
        Ok(()) => true,
        // Another process created it between the open and the creation.
        Err(Errno::EXIST) => false,
        Err(errno) => return Err(io_error("create", &component_path(), errno)),
    };
    let fd = rfs::openat(parent, name, flags, Mode::empty())
        .map_err(|e| io_error("open", &component_path(), e))?;
    Ok((fd, was_created))
}

/// Checks that the symlink-free `path` still leads from `root` to `fd`, so
/// a directory renamed out from under the walk is noticed. Kernels without
/// `openat2` (before 5.6) skip the check.
fn verify_reachable(root: BorrowedFd<'_>, fd: &OwnedFd, path: &Path) -> Result<(), ResolveError> {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let relative = path.strip_prefix("/").unwrap_or(path);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let again = match rfs::openat2(root, relative, flags, Mode::empty(), how) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => return Ok(()),
        Err(Errno::NOENT | Errno::LOOP | Errno::XDEV) => {
            return Err(ResolveError::Changed {
                path: path.to_path_buf(),
            })
        }
        Err(errno) => return Err(io_error("open", path, errno)),
    };
    let mask = StatxFlags::INO | StatxFlags::MNT_ID;
    let first =
        rfs::statx(fd, "", AtFlags::EMPTY_PATH, mask).map_err(|e| io_error("statx", path, e))?;
    let second = rfs::statx(&again, "", AtFlags::EMPTY_PATH, mask)
        .map_err(|e| io_error("statx", path, e))?;
    let same = first.stx_ino == second.stx_ino
        && first.stx_dev_major == second.stx_dev_major
        && first.stx_dev_minor == second.stx_dev_minor
        && first.stx_mnt_id == second.stx_mnt_id;
    if !same {
        return Err(ResolveError::Changed {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, OwnedFd) {
        let dir = tempfile::tempdir().expect("create temp dir");
        let root = dir.path();
        fs::create_dir_all(root.join("etc/sub")).unwrap();
        fs::create_dir_all(root.join("run")).unwrap();
        fs::write(root.join("etc/hosts"), "x").unwrap();
        symlink("/run", root.join("var-run")).unwrap();
        symlink("../run", root.join("etc/up-run")).unwrap();
        symlink("../../..", root.join("etc/escape")).unwrap();
        symlink("/../etc", root.join("abs-escape")).unwrap();
        symlink("hosts", root.join("etc/hosts-link")).unwrap();
        symlink("loop-b", root.join("loop-a")).unwrap();
        symlink("loop-a", root.join("loop-b")).unwrap();
        symlink("/missing/file", root.join("dangling")).unwrap();
        let fd = rfs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open temp dir");
        (dir, fd)
    }

    fn resolve(
        root: &OwnedFd,
        path: &str,
        options: ResolveOptions,
    ) -> Result<Resolved, ResolveError> {
        resolve_in_root(root.as_fd(), Path::new(path), options)
    }

    #[test]
    fn plain_path_resolves() {
        let (_dir, root) = tree();
        let resolved = resolve(&root, "/etc/sub", ResolveOptions::existing()).unwrap();
        assert_eq!(resolved.path, Path::new("/etc/sub"));
        assert!(!resolved.created);
    }

    #[test]
    fn absolute_symlink_stays_inside() {
        let (dir, root) = tree();
        let resolved = resolve(
            &root,
            "/var-run/x",
            ResolveOptions::create(Create::Directory),
        )
        .unwrap();
        assert_eq!(resolved.path, Path::new("/run/x"));
        assert!(resolved.created);
        assert!(dir.path().join("run/x").is_dir());
    }

    #[test]
    fn relative_symlink_inside_root() {
        let (_dir, root) = tree();
        let resolved = resolve(&root, "etc/up-run", ResolveOptions::existing()).unwrap();
        assert_eq!(resolved.path, Path::new("/run"));
    }

    #[test]
    fn symlink_climbing_out_is_rejected() {
        let (_dir, root) = tree();
        let err = resolve(
            &root,
            "/etc/escape/tmp",
            ResolveOptions::create(Create::Directory),
        )
        .unwrap_err();
        assert!(matches!(&err, ResolveError::Escape { link } if link == Path::new("/etc/escape")));
        assert_eq!(
            err.to_string(),
            "symlink \"/etc/escape\" leads out of the rootfs"
        );

        let err = resolve(&root, "/abs-escape", ResolveOptions::existing()).unwrap_err();
        assert!(matches!(err, ResolveError::Escape { .. }));
    }

    #[test]
    fn literal_dotdot_stays_at_root() {
        let (_dir, root) = tree();
        let resolved = resolve(&root, "/../../etc/../run", ResolveOptions::existing()).unwrap();
        assert_eq!(resolved.path, Path::new("/run"));
    }

    #[test]
    fn final_symlink_rejected_when_asked() {
        let (_dir, root) = tree();
        let options = ResolveOptions {
            create: Create::Directory,
            reject_final_symlink: true,
        };
        let err = resolve(&root, "/var-run", options).unwrap_err();
        assert!(matches!(err, ResolveError::Symlink { .. }));
        // Intermediate symlinks are still expanded.
        let resolved = resolve(&root, "/var-run/proc", options).unwrap();
        assert_eq!(resolved.path, Path::new("/run/proc"));
    }

    #[test]
    fn symlink_loop_is_reported() {
        let (_dir, root) = tree();
        let err = resolve(&root, "/loop-a", ResolveOptions::existing()).unwrap_err();
        assert!(matches!(err, ResolveError::SymlinkLoop));
    }

    #[test]
    fn file_in_the_middle_is_not_a_directory() {
        let (_dir, root) = tree();
        let err = resolve(
            &root,
            "/etc/hosts/x",
            ResolveOptions::create(Create::Directory),
        )
        .unwrap_err();
        assert!(err.is_not_directory());
    }

    #[test]
    fn missing_path_without_create() {
        let (_dir, root) = tree();
        let err = resolve(&root, "/nope/x", ResolveOptions::existing()).unwrap_err();
        assert!(err.is_not_found());
    }

    #[test]
    fn create_file_through_dangling_symlink() {
        let (dir, root) = tree();
        let resolved = resolve(&root, "/dangling", ResolveOptions::create(Create::File)).unwrap();
        assert_eq!(resolved.path, Path::new("/missing/file"));
        assert!(resolved.created);
        assert!(dir.path().join("missing/file").is_file());
    }

    #[test]
    fn file_symlink_resolves_to_file() {
        let (_dir, root) = tree();
        let resolved = resolve(&root, "/etc/hosts-link", ResolveOptions::existing()).unwrap();
        assert_eq!(resolved.path, Path::new("/etc/hosts"));
    }

    #[test]
    fn root_itself_resolves() {
        let (_dir, root) = tree();
        let resolved = resolve(&root, "/", ResolveOptions::existing()).unwrap();
        assert_eq!(resolved.path, Path::new("/"));
    }
}
