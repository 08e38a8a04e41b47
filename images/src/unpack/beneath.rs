//! The destination directory as a file descriptor, and the lookups below
//! it. Every path is resolved with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, so no symbolic link in a
//! parent component is ever followed and nothing resolves outside the root.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::UnpackError;

/// Mode of parent directories that the tar does not list.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// Flags for directories opened with `openat2`. `RESOLVE_NO_SYMLINKS`
/// covers the last component too; `O_NOFOLLOW` would turn its `ELOOP` into
/// `ENOTDIR`.
const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// The open destination directory, with the most recently used parent
/// directory kept open because tar entries come grouped by directory. The
/// cached descriptor is shared with the jobs that create entries in it.
pub(crate) struct Root {
    fd: OwnedFd,
    cached: Option<(PathBuf, Arc<OwnedFd>)>,
}

impl Root {
    /// Opens `path`, which must be an empty directory.
    pub fn open(path: &Path) -> Result<Self, UnpackError> {
        let destination = |action, source: Errno| UnpackError::Destination {
            path: path.to_owned(),
            action,
            source: source.into(),
        };
        let fd =
            rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| destination("open", e))?;
        let mut dir = rustix::fs::Dir::read_from(&fd).map_err(|e| destination("read", e))?;
        for entry in dir.by_ref() {
            let entry = entry.map_err(|e| destination("read", e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                return Err(UnpackError::NotEmpty(path.to_owned()));
            }
        }
        Ok(Self { fd, cached: None })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Forgets the cached parent directory. Called whenever an entry is
    /// removed, since the cached directory may be the removed one.
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    /// Returns the directory `parent` (relative to the root), creating
    /// missing components with mode 0755. `entry` names the tar entry in
    /// errors.
    pub fn parent(&mut self, parent: &Path, entry: &str) -> Result<BorrowedFd<'_>, UnpackError> {
        if parent.as_os_str().is_empty() {
            return Ok(self.fd.as_fd());
        }
        self.cache_parent(parent, entry)?;
        Ok(self.cached.as_ref().map(|(_, fd)| fd.as_fd()).unwrap())
    }

    /// Like [`Root::parent`], returning a descriptor that outlives the next
    /// lookup. The root itself is returned as a duplicate descriptor.
    pub fn shared_parent(
        &mut self,
        parent: &Path,
        entry: &str,
    ) -> Result<Arc<OwnedFd>, UnpackError> {
        if parent.as_os_str().is_empty() {
            let hit = matches!(&self.cached, Some((path, _)) if path.as_os_str().is_empty());
            if !hit {
                self.cached = Some((PathBuf::new(), Arc::new(self.lookup(parent, entry)?)));
            }
        } else {
            self.cache_parent(parent, entry)?;
        }
        Ok(Arc::clone(&self.cached.as_ref().unwrap().1))
    }

    fn cache_parent(&mut self, parent: &Path, entry: &str) -> Result<(), UnpackError> {
        let hit = matches!(&self.cached, Some((path, _)) if path == parent);
        if !hit {
            let fd = match open_beneath(self.fd.as_fd(), parent) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => self.create_parents(parent, entry)?,
                Err(errno) => return Err(lookup_error(entry, parent, errno)),
            };
            self.cached = Some((parent.to_owned(), Arc::new(fd)));
        }
        Ok(())
    }

    /// Opens the existing directory `dir` (relative to the root) without
    /// creating anything.
    pub fn lookup(&self, dir: &Path, entry: &str) -> Result<OwnedFd, UnpackError> {
        if dir.as_os_str().is_empty() {
            return rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
                .map_err(|e| UnpackError::entry(entry, "duplicate the root descriptor", e));
        }
        open_beneath(self.fd.as_fd(), dir).map_err(|errno| lookup_error(entry, dir, errno))
    }

    fn create_parents(&self, parent: &Path, entry: &str) -> Result<OwnedFd, UnpackError> {
        let mut current: Option<OwnedFd> = None;
        let mut walked = PathBuf::new();
        for component in parent.iter() {
            walked.push(component);
            let base = current.as_ref().map_or(self.fd.as_fd(), |fd| fd.as_fd());
            let fd = match open_beneath(base, Path::new(component)) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    make_implicit_dir(base, component)
                        .map_err(|e| UnpackError::entry(entry, "create parent directory", e))?;
                    open_beneath(base, Path::new(component))
                        .map_err(|errno| lookup_error(entry, &walked, errno))?
                }
                Err(errno) => return Err(lookup_error(entry, &walked, errno)),
            };
            current = Some(fd);
        }
        Ok(current.expect("parent has at least one component"))
    }
}

fn open_beneath(base: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(base, path, DIR_FLAGS, Mode::empty(), resolve_flags())
}

fn make_implicit_dir(base: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rustix::fs::mkdirat(base, name, Mode::from_raw_mode(IMPLICIT_DIR_MODE)) {
        Ok(()) => {}
        Err(Errno::EXIST) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    // The umask may have cleared bits of the requested mode.
    rustix::fs::chmodat(
        base,
        name,
        Mode::from_raw_mode(IMPLICIT_DIR_MODE),
        AtFlags::empty(),
    )?;
    Ok(())
}

fn lookup_error(entry: &str, dir: &Path, errno: Errno) -> UnpackError {
    match errno {
        Errno::LOOP => UnpackError::rejected(
            entry,
            format!(
                "has a parent component that is a symbolic link (in {})",
                dir.display()
            ),
        ),
        Errno::XDEV => UnpackError::rejected(
            entry,
            format!("resolves outside the layer root (at {})", dir.display()),
        ),
        Errno::NOTDIR => UnpackError::rejected(
            entry,
            format!(
                "has a parent component that is not a directory (in {})",
                dir.display()
            ),
        ),
        other => UnpackError::entry(entry, "open parent directory", other),
    }
}

/// Removes `name` in `dir` whatever its type; a directory is removed with
/// its contents. A missing `name` is not an error.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let child = rustix::fs::openat(dir, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
    remove_children(child.as_fd())?;
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

fn remove_children(dir: BorrowedFd<'_>) -> io::Result<()> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    for name in names {
        remove_all(dir, OsStr::from_bytes(name.to_bytes()))?;
    }
    Ok(())
}
