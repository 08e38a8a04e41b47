//! Id-mapped bind mounts: a spec mount with `uidMappings`/`gidMappings`
//! (runtime spec 1.1) or the `idmap`/`ridmap` options (runtime spec 1.2).
//!
//! With a mapping entry `{containerID, hostID, size}`, a file owned by
//! `containerID + n` on the source file system appears owned by the host
//! id `hostID + n` below the mount. A file created through the mount by
//! host id `hostID + n` is stored as owned by `containerID + n`. In a
//! container with a user namespace of its own, the host ids appear
//! translated through that namespace's mappings.
//!
//! `mount_setattr(MOUNT_ATTR_IDMAP)` needs `CAP_SYS_ADMIN` in the user
//! namespace that owns the mounted file system, the host's for disk file
//! systems, which the init of a container with a user namespace lacks. So
//! the runtime clones each source with `open_tree(OPEN_TREE_CLONE)` and
//! id-maps the detached tree before it clones the init. The init inherits
//! the trees as `O_CLOEXEC` fds and attaches them in [`super::prepare_with`].
//!
//! A container that enters a user namespace gets the same treatment for
//! its plain bind mounts, without the id mapping. Inside that namespace, the
//! init is no longer host root and cannot open a source that only host root
//! may read, such as a directory with mode 0700.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};
use rustix::fs::CWD;
use rustix::mount::{open_tree, OpenTreeFlags};

use super::mount::is_bind_entry;
use super::options::{parse_mount_options, IdMapScope};
use super::sys::{self, MountAttr, ATTR_IDMAP};
use super::{userns, RootfsError};

/// Maximum number of lines in a uid or gid map since Linux 4.15.
const MAX_MAP_LINES: usize = 340;

const WHAT: &str = "mount destination";

/// The container's user namespace, whose mappings an `idmap` or `ridmap`
/// mount without mappings of its own takes.
#[derive(Debug, Clone, Copy)]
pub enum ContainerUserNamespace<'a> {
    /// The container runs in the host's user namespace.
    None,
    /// A new user namespace with `linux.uidMappings` and `linux.gidMappings`.
    New {
        uid_mappings: &'a [LinuxIdMapping],
        gid_mappings: &'a [LinuxIdMapping],
    },
    /// An existing user namespace joined by path.
    Joined(&'a Path),
}

/// The origin of the user namespace of one id-mapped mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingSource {
    /// No id mapping: a plain bind mount that the runtime opens on the host
    /// because the init runs in a user namespace.
    Unmapped,
    /// A namespace the runtime creates with these mappings.
    Mappings {
        uid: Vec<LinuxIdMapping>,
        gid: Vec<LinuxIdMapping>,
    },
    /// The user namespace file at this path.
    Namespace(PathBuf),
}

/// One spec bind mount whose source the runtime opens before the clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMapRequest {
    /// Index of the mount in the spec's `mounts`.
    pub index: usize,
    pub destination: PathBuf,
    /// Host path of the bind mount's source.
    pub source: PathBuf,
    /// `rbind`: the clone includes the mounts below the source.
    pub rbind: bool,
    /// `ridmap`: the mapping applies to every mount of the clone, not only
    /// to its top.
    pub recursive: bool,
    pub mapping: MappingSource,
}

/// Returns true when a spec mount requests an id mapping.
pub fn is_id_mapped(entry: &Mount) -> bool {
    let options = parse_mount_options(entry.options().as_deref().unwrap_or_default());
    options.idmap.is_some() || entry.uid_mappings().is_some() || entry.gid_mappings().is_some()
}

/// Validates the id-mapped mounts of `spec` and lists them, in spec order.
/// Empty `uidMappings` and `gidMappings` count as absent, as runtime spec
/// 1.2 allows them for `idmap` and `ridmap`. When the container has a user
/// namespace, new or joined, the list also has every other bind mount, with
/// [`MappingSource::Unmapped`].
pub fn plan(
    spec: &Spec,
    user_namespace: ContainerUserNamespace<'_>,
) -> Result<Vec<IdMapRequest>, RootfsError> {
    let mut requests = Vec::new();
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for (index, entry) in mounts.iter().enumerate() {
        if let Some(request) = plan_mount(index, entry, user_namespace)? {
            requests.push(request);
        }
    }
    Ok(requests)
}

fn plan_mount(
    index: usize,
    entry: &Mount,
    user_namespace: ContainerUserNamespace<'_>,
) -> Result<Option<IdMapRequest>, RootfsError> {
    if !is_id_mapped(entry) {
        return Ok(plan_unmapped(index, entry, user_namespace));
    }
    let dest = entry.destination();
    let invalid = |reason: String| RootfsError::InvalidMount {
        path: dest.clone(),
        reason,
    };
    if !is_bind_entry(entry) {
        return Err(invalid(
            "uidMappings, gidMappings, idmap and ridmap apply to bind mounts only".into(),
        ));
    }
    let Some(source) = entry.source().clone() else {
        return Err(invalid("a bind mount needs a source".into()));
    };
    let options = parse_mount_options(entry.options().as_deref().unwrap_or_default());
    let uid = entry.uid_mappings().clone().unwrap_or_default();
    let gid = entry.gid_mappings().clone().unwrap_or_default();
    let mapping = match (uid.is_empty(), gid.is_empty(), user_namespace) {
        (false, false, _) => {
            check_mappings("uidMappings", &uid).map_err(&invalid)?;
            check_mappings("gidMappings", &gid).map_err(&invalid)?;
            MappingSource::Mappings { uid, gid }
        }
        (true, true, ContainerUserNamespace::New {
            uid_mappings,
            gid_mappings,
        }) => MappingSource::Mappings {
            uid: uid_mappings.to_vec(),
            gid: gid_mappings.to_vec(),
        },
        (true, true, ContainerUserNamespace::Joined(path)) => {
            MappingSource::Namespace(path.to_path_buf())
        }
        (true, true, ContainerUserNamespace::None) => {
            return Err(invalid(
                "an idmap or ridmap mount without uidMappings and gidMappings takes the mappings of the container's user namespace, but the container has none: add the mappings to the mount or a user namespace to linux.namespaces".into(),
            ))
        }
        _ => {
            return Err(invalid(
                "uidMappings and gidMappings must be given together".into(),
            ))
        }
    };
    Ok(Some(IdMapRequest {
        index,
        destination: dest.clone(),
        source,
        rbind: options.is_recursive(),
        recursive: options.idmap == Some(IdMapScope::Recursive),
        mapping,
    }))
}

/// Returns the request for a bind mount without id mapping when the init
/// enters a user namespace. A bind mount without a source gets none: the
/// init reports that error with the other mount errors.
fn plan_unmapped(
    index: usize,
    entry: &Mount,
    user_namespace: ContainerUserNamespace<'_>,
) -> Option<IdMapRequest> {
    if matches!(user_namespace, ContainerUserNamespace::None) || !is_bind_entry(entry) {
        return None;
    }
    let source = entry.source().clone()?;
    let options = parse_mount_options(entry.options().as_deref().unwrap_or_default());
    Some(IdMapRequest {
        index,
        destination: entry.destination().clone(),
        source,
        rbind: options.is_recursive(),
        recursive: false,
        mapping: MappingSource::Unmapped,
    })
}

/// Checks for what the kernel would reject on a write to `uid_map` or
/// `gid_map`, so that the error names the field. The kernel rejects too many
/// lines, a map text of a page or more, an empty range, and a range past
/// 2^32 - 1 or overlapping another.
pub fn check_mappings(field: &str, mappings: &[LinuxIdMapping]) -> Result<(), String> {
    if mappings.len() > MAX_MAP_LINES {
        return Err(format!(
            "{field} has {} entries, the kernel takes at most {MAX_MAP_LINES}",
            mappings.len()
        ));
    }
    let text_len = userns::map_text(mappings).len();
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |size| size as usize);
    if text_len >= page_size {
        return Err(format!(
            "{field} makes a map text of {text_len} bytes, the kernel takes less than {page_size}"
        ));
    }
    let end = |start: u32, size: u32| u64::from(start) + u64::from(size);
    for (i, m) in mappings.iter().enumerate() {
        let describe = || {
            format!(
                "{field} entry {{containerID: {}, hostID: {}, size: {}}}",
                m.container_id(),
                m.host_id(),
                m.size()
            )
        };
        if m.size() == 0 {
            return Err(format!("{} has size 0", describe()));
        }
        if end(m.container_id(), m.size()) > u64::from(u32::MAX)
            || end(m.host_id(), m.size()) > u64::from(u32::MAX)
        {
            return Err(format!("{} goes past id 4294967294", describe()));
        }
        for other in &mappings[..i] {
            let overlaps = |a: u32, b: u32| {
                u64::from(a) < end(b, other.size()) && u64::from(b) < end(a, m.size())
            };
            if overlaps(m.container_id(), other.container_id())
                || overlaps(m.host_id(), other.host_id())
            {
                return Err(format!("{} overlaps another entry", describe()));
            }
        }
    }
    Ok(())
}

/// Detached clones of the sources of a spec's bind mounts, by index in the
/// spec's `mounts`: id-mapped for id-mapped mounts, plain for the other bind
/// mounts of a container with a user namespace. Empty for a spec without
/// any.
#[derive(Debug, Default)]
pub struct IdMappedMounts {
    trees: BTreeMap<usize, OwnedFd>,
}

impl IdMappedMounts {
    /// Clones the source of every request, and id-maps the clone unless
    /// the request is [`MappingSource::Unmapped`]. Runs in the runtime on
    /// the host, before the init is cloned. On error, every tree and user
    /// namespace made so far is closed and every helper process reaped.
    pub fn open(requests: &[IdMapRequest]) -> Result<IdMappedMounts, RootfsError> {
        let mut namespaces: Vec<(&MappingSource, OwnedFd)> = Vec::new();
        let mut trees = BTreeMap::new();
        for request in requests {
            if request.mapping == MappingSource::Unmapped {
                trees.insert(request.index, clone_source(request)?);
                continue;
            }
            let known = namespaces
                .iter()
                .position(|(mapping, _)| *mapping == &request.mapping);
            let position = match known {
                Some(position) => position,
                None => {
                    let fd = open_user_namespace(request)?;
                    namespaces.push((&request.mapping, fd));
                    namespaces.len() - 1
                }
            };
            let tree = clone_id_mapped(request, namespaces[position].1.as_fd())?;
            trees.insert(request.index, tree);
        }
        Ok(IdMappedMounts { trees })
    }

    /// Returns the descriptors of every tree, which the init keeps open.
    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.trees.values().map(|tree| tree.as_fd())
    }

    /// Returns the prepared tree for the spec mount at `index`.
    pub fn tree(&self, index: usize) -> Option<BorrowedFd<'_>> {
        self.trees.get(&index).map(|fd| fd.as_fd())
    }

    pub fn len(&self) -> usize {
        self.trees.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }
}

fn open_user_namespace(request: &IdMapRequest) -> Result<OwnedFd, RootfsError> {
    let dest = &request.destination;
    match &request.mapping {
        MappingSource::Unmapped => unreachable!("an unmapped request needs no user namespace"),
        MappingSource::Mappings { uid, gid } => {
            userns::create_user_namespace(uid, gid).map_err(|e| {
                RootfsError::io(WHAT, dest, "create the user namespace of the id mapping", e)
            })
        }
        MappingSource::Namespace(path) => {
            std::fs::File::open(path).map(OwnedFd::from).map_err(|e| {
                let op = format!("open the user namespace {}", path.display());
                RootfsError::io(WHAT, dest, op, e)
            })
        }
    }
}

/// Clones the request's source with `open_tree(OPEN_TREE_CLONE)`, with
/// the mounts below it for `rbind`.
fn clone_source(request: &IdMapRequest) -> Result<OwnedFd, RootfsError> {
    let source = &request.source;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if request.rbind {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    open_tree(CWD, source, flags).map_err(|e| {
        RootfsError::io(
            WHAT,
            &request.destination,
            format!("open_tree of source {}", source.display()),
            e,
        )
    })
}

/// Clones the request's source and sets `MOUNT_ATTR_IDMAP` with the user
/// namespace `namespace` on the clone.
fn clone_id_mapped(
    request: &IdMapRequest,
    namespace: BorrowedFd<'_>,
) -> Result<OwnedFd, RootfsError> {
    let dest = &request.destination;
    let source = &request.source;
    let tree = clone_source(request)?;
    let attr = MountAttr {
        attr_set: ATTR_IDMAP,
        userns_fd: namespace.as_raw_fd() as u64,
        ..MountAttr::default()
    };
    sys::mount_setattr_fd(tree.as_fd(), request.recursive, &attr).map_err(|e| {
        let op = format!("id mapping of source {}", source.display());
        if e.raw_os_error() != Some(libc::EINVAL) {
            return RootfsError::io(WHAT, dest, op, e);
        }
        RootfsError::InvalidMount {
            path: dest.clone(),
            reason: format!(
                "{op} failed: {e} (the file system may not support id-mapped mounts on this kernel)"
            ),
        }
    })?;
    Ok(tree)
}

#[cfg(test)]
#[path = "idmap_tests.rs"]
mod tests;
