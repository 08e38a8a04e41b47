//! The filesystem of a container as its processes see it, for `cp`: the
//! rootfs mounted at `<root>/containers/<id>/rootfs` with the bind mounts
//! of the runtime spec (volumes, binds, `/etc/hosts`...) laid over it.
//!
//! The container owns every name in its rootfs and its volumes, so no
//! name is ever resolved from the host's root. Each filesystem (the rootfs
//! or a bind mount's source) is opened once, and every lookup below it is
//! `openat2` with `RESOLVE_IN_ROOT`, so `..` and absolute symlinks stop at
//! that filesystem's root. Symlinks are followed one component at a time
//! by [`ContainerFs::resolve`], which applies the container's mount table
//! to each target, as the kernel does inside the container.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use rustix::fs::{openat, openat2, statat, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use serde_json::Value;

/// Symlinks followed in one path before giving up, as Linux's limit.
const MAX_SYMLINKS: usize = 40;

/// A mount of the runtime spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute and normalised.
    pub destination: PathBuf,
    /// The host path for bind mounts, else the spec's source.
    pub source: PathBuf,
    /// `bind`, or the filesystem type of other mounts (`tmpfs`, `proc`).
    pub kind: String,
    pub read_only: bool,
}

impl Mount {
    pub fn is_bind(&self) -> bool {
        self.kind == "bind"
    }
}

/// The location of a path of the container.
#[derive(Debug)]
pub enum Node {
    /// The root directory of the rootfs or of a directory mount.
    Root(OwnedFd),
    /// The entry `name` of directory `parent`; it may not exist.
    Entry { parent: OwnedFd, name: OsString },
}

impl Node {
    /// Returns the entry's status without following a symlink, or None
    /// when it does not exist.
    pub fn stat(&self) -> std::io::Result<Option<Stat>> {
        let result = match self {
            Node::Root(fd) => rustix::fs::fstat(fd),
            Node::Entry { parent, name } => statat(parent, name, AtFlags::SYMLINK_NOFOLLOW),
        };
        match result {
            Ok(stat) => Ok(Some(stat)),
            Err(Errno::NOENT) => Ok(None),
            Err(errno) => Err(errno.into()),
        }
    }
}

/// A path resolved inside the container.
#[derive(Debug)]
pub struct Resolved {
    /// The canonical path: absolute, without `.`, `..` or symlinks, but
    /// for the last component when it was not followed.
    pub path: PathBuf,
    pub node: Node,
}

/// The filesystem view of one container.
pub struct ContainerFs {
    /// The container's name, for messages.
    pub name: String,
    rootfs: OwnedFd,
    rootfs_read_only: bool,
    mounts: Vec<Mount>,
}

impl ContainerFs {
    /// Opens the rootfs at `rootfs` with the mounts and read-only flag of
    /// `spec`, the container's runtime spec.
    pub fn open(name: &str, rootfs: &Path, spec: &Value) -> anyhow::Result<ContainerFs> {
        let fd = rustix::fs::open(
            rootfs,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("failed to open the rootfs {}", rootfs.display()))?;
        Ok(ContainerFs {
            name: name.to_owned(),
            rootfs: fd,
            rootfs_read_only: spec["root"]["readonly"].as_bool().unwrap_or(false),
            mounts: spec_mounts(spec),
        })
    }

    /// Returns the mount whose destination is exactly `path`, the last
    /// one when several are, as the last mount hides the others.
    pub fn mount_at(&self, path: &Path) -> Option<&Mount> {
        self.mounts
            .iter()
            .rev()
            .find(|mount| mount.destination == path)
    }

    /// Returns the mount holding `path` (the longest destination that is a
    /// prefix of it) or None for the rootfs, and the rest of the path.
    fn holder<'a>(&self, path: &'a Path) -> (Option<&Mount>, &'a Path) {
        let mut best: Option<&Mount> = None;
        for mount in &self.mounts {
            if !path.starts_with(&mount.destination) {
                continue;
            }
            let longer = best.is_none_or(|best| {
                mount.destination.components().count() >= best.destination.components().count()
            });
            if longer {
                best = Some(mount);
            }
        }
        match best {
            Some(mount) => (
                Some(mount),
                path.strip_prefix(&mount.destination).unwrap_or(path),
            ),
            None => (None, path.strip_prefix("/").unwrap_or(path)),
        }
    }

    /// Returns true when writes to `path` are rejected: it lies in a
    /// read-only mount, or in a read-only rootfs.
    pub fn is_read_only(&self, path: &Path) -> bool {
        match self.holder(path).0 {
            Some(mount) => mount.read_only,
            None => self.rootfs_read_only,
        }
    }

    /// Opens the root directory of the filesystem holding `path`, or for a
    /// file bind mount, returns its source's parent and file name.
    fn open_root(&self, path: &Path, mount: Option<&Mount>) -> anyhow::Result<Root> {
        let Some(mount) = mount else {
            let fd = openat(
                &self.rootfs,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .context("failed to open the container's rootfs")?;
            return Ok(Root::Dir(fd));
        };
        if !mount.is_bind() {
            bail!(
                "cannot copy {} of container {}: it is in a {} mount at {}, which exists only inside the running container",
                path.display(),
                self.name,
                mount.kind,
                mount.destination.display()
            );
        }

        // The source is a host path that the user chose for the mount, so
        // it is opened from the host's root like the mount itself was.
        let source = &mount.source;
        let metadata = std::fs::metadata(source).with_context(|| {
            format!(
                "failed to open {}, the source of mount {} of container {}",
                source.display(),
                mount.destination.display(),
                self.name
            )
        })?;
        if metadata.is_dir() {
            let fd = rustix::fs::open(
                source,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("failed to open {}", source.display()))?;
            return Ok(Root::Dir(fd));
        }

        let source = std::fs::canonicalize(source)
            .with_context(|| format!("failed to resolve {}", source.display()))?;
        let parent = source.parent().unwrap_or(Path::new("/"));
        let name = source
            .file_name()
            .ok_or_else(|| anyhow!("invalid mount source {}", source.display()))?;
        let parent = rustix::fs::open(
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("failed to open {}", parent.display()))?;
        Ok(Root::File {
            parent,
            name: name.to_owned(),
        })
    }

    /// Returns the node of the canonical path `path`, which
    /// [`ContainerFs::resolve`] or a mount destination gives.
    pub fn node(&self, path: &Path) -> anyhow::Result<Node> {
        let (mount, relative) = self.holder(path);
        let root = self.open_root(path, mount)?;
        let Some(name) = relative.file_name() else {
            return Ok(match root {
                Root::Dir(fd) => Node::Root(fd),
                Root::File { parent, name } => Node::Entry { parent, name },
            });
        };

        let Root::Dir(root) = root else {
            bail!(
                "cannot copy {} of container {}: {} is a file",
                path.display(),
                self.name,
                mount
                    .map_or(Path::new("/"), |mount| &mount.destination)
                    .display()
            );
        };

        let parent = relative.parent().unwrap_or(Path::new(""));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        // Every component of a canonical path is a directory. A symlink met
        // here was put there after the check, so the open fails rather than
        // follow it.
        let parent = openat2(
            &root,
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|errno| self.error(path, errno))?;
        Ok(Node::Entry {
            parent,
            name: name.to_owned(),
        })
    }

    /// Resolves `path` (relative paths start at `/`), following symlinks
    /// in every component but the last, and in the last one too with
    /// `follow`. The last component need not exist; the others must be
    /// directories.
    pub fn resolve(&self, path: &Path, follow: bool) -> anyhow::Result<Resolved> {
        let mut pending: VecDeque<OsString> = components(path.as_os_str()).collect();
        let mut current = PathBuf::from("/");
        let mut symlinks = 0;
        while let Some(part) = pending.pop_front() {
            if part == ".." {
                current.pop();
                continue;
            }
            let candidate = current.join(&part);
            let last = pending.is_empty();
            if last && !follow {
                current = candidate;
                break;
            }
            let node = self.node(&candidate)?;
            let Some(stat) = node.stat().map_err(|err| self.io_error(&candidate, err))? else {
                if last {
                    current = candidate;
                    break;
                }
                return Err(self.error(&candidate, Errno::NOENT));
            };
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Symlink => {
                    symlinks += 1;
                    if symlinks > MAX_SYMLINKS {
                        return Err(self.error(path, Errno::LOOP));
                    }
                    let Node::Entry { parent, name } = &node else {
                        return Err(self.error(&candidate, Errno::INVAL));
                    };
                    let target = rustix::fs::readlinkat(parent, name, Vec::new())
                        .map_err(|errno| self.error(&candidate, errno))?;
                    let target = OsStr::from_bytes(target.as_bytes());
                    if target.as_bytes().starts_with(b"/") {
                        current = PathBuf::from("/");
                    }
                    for part in components(target).collect::<Vec<_>>().into_iter().rev() {
                        pending.push_front(part);
                    }
                }
                FileType::Directory => current = candidate,
                _ if last => current = candidate,
                _ => return Err(self.error(&candidate, Errno::NOTDIR)),
            }
        }
        let node = self.node(&current)?;
        Ok(Resolved {
            path: current,
            node,
        })
    }

    /// Opens the directory at the canonical `path` for reading or as the
    /// parent of new entries.
    pub fn open_dir(&self, path: &Path) -> anyhow::Result<OwnedFd> {
        match self.node(path)? {
            Node::Root(fd) => Ok(fd),
            Node::Entry { parent, name } => openat(
                &parent,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| self.error(path, errno)),
        }
    }

    /// Builds an error about `path` of this container.
    pub fn error(&self, path: &Path, errno: Errno) -> anyhow::Error {
        self.io_error(path, errno.into())
    }

    fn io_error(&self, path: &Path, err: std::io::Error) -> anyhow::Error {
        anyhow!("{}:{}: {err}", self.name, path.display())
    }
}

/// The root of a filesystem of the container.
enum Root {
    Dir(OwnedFd),
    /// A file bind-mounted on its own, as `/etc/hosts` is.
    File {
        parent: OwnedFd,
        name: OsString,
    },
}

/// Splits `path` into its non-empty components other than `.`, keeping
/// `..`.
fn components(path: &OsStr) -> impl Iterator<Item = OsString> + '_ {
    path.as_bytes()
        .split(|byte| *byte == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .map(|part| OsStr::from_bytes(part).to_owned())
}

/// Makes `path` absolute and removes `.` and `..` without looking at the
/// filesystem, as for mount destinations.
pub fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::ParentDir => {
                normal.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    normal
}

/// Reads the mounts of a runtime spec. A mount is a bind when its type is
/// `bind` or its options contain `bind` or `rbind`, and `ro` makes it
/// read-only.
pub fn spec_mounts(spec: &Value) -> Vec<Mount> {
    let Some(mounts) = spec["mounts"].as_array() else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter_map(|mount| {
            let destination = mount["destination"].as_str()?;
            let options: Vec<&str> = mount["options"]
                .as_array()
                .map(|options| options.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let kind = mount["type"].as_str().unwrap_or_default();
            let bind = kind == "bind" || options.iter().any(|o| *o == "bind" || *o == "rbind");
            Some(Mount {
                destination: normalize(Path::new(destination)),
                source: PathBuf::from(mount["source"].as_str().unwrap_or_default()),
                kind: if bind { "bind" } else { kind }.to_owned(),
                read_only: options.contains(&"ro"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalize_stays_below_root() {
        assert_eq!(normalize(Path::new("a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../../etc")), PathBuf::from("/etc"));
        assert_eq!(normalize(Path::new("")), PathBuf::from("/"));
    }

    #[test]
    fn components_keep_dotdot() {
        let parts: Vec<OsString> = components(OsStr::new("/a//./b/../c/")).collect();
        assert_eq!(parts, ["a", "b", "..", "c"].map(OsString::from));
    }

    #[test]
    fn spec_mounts_kinds() {
        let spec = json!({ "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/data/", "type": "bind", "source": "/v/_data", "options": ["rbind", "ro"] },
            { "destination": "/etc/hosts", "type": "none", "source": "/c/hosts", "options": ["rbind", "rprivate"] },
        ]});
        let mounts = spec_mounts(&spec);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].kind, "proc");
        assert!(!mounts[0].is_bind());
        assert_eq!(mounts[1].destination, PathBuf::from("/data"));
        assert!(mounts[1].is_bind());
        assert!(mounts[1].read_only);
        assert!(mounts[2].is_bind());
        assert!(!mounts[2].read_only);
    }
}
