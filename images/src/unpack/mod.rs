//! Unpacking of OCI layer tars into directories that serve as overlayfs
//! lower layers.
//!
//! Each layer goes into its own empty directory, and writes stay below it.
//! Parents are opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`
//! and each entry is created by name in its open parent. An entry that
//! would escape (absolute name, `..` above the root, a symbolic link as
//! parent, a hard link to outside) rejects the whole layer. Whiteouts
//! become overlayfs whiteouts.
//!
//! One thread reads the stream and applies directories, whiteouts, links
//! and devices itself. It hands regular files of up to
//! [`MAX_QUEUED_FILE`] bytes and symbolic links to a pool of worker
//! threads, because creating files dominates the time of an unpack. The
//! result is the same as applying every entry in tar order: an entry whose
//! name an earlier entry used, an entry below a name still queued, and a
//! hard link all wait until the workers are idle.

mod beneath;
mod compression;
mod create;
mod digest;
mod error;
mod metadata;
mod name;
mod pool;
mod whiteout;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::{self, BufReader, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use rustix::fs::{FileType, Timestamps};
use tar::EntryType;

use beneath::Root;
pub use compression::Compression;
use digest::HashingReader;
pub use error::UnpackError;
use metadata::Metadata;
use name::EntryName;
use pool::{Job, Pool, Shared};
use whiteout::Whiteout;

/// Buffer size for reading the compressed stream and for copying file data.
const BUFFER_SIZE: usize = 1 << 20;

/// Largest regular file handed to a worker, in bytes. Larger files are
/// streamed to disk by the reading thread, so that no file is held in
/// memory whole.
pub const MAX_QUEUED_FILE: u64 = 4 << 20;

/// Number of worker threads [`unpack_layer`] uses.
// NOTE: chosen from the unpack_time example on the Debian fixture layer
// (ext4, 2 CPUs): 2, 4 and 8 workers took 3.3 to 4.1 s against 4.8 to
// 5.5 s with none. Other file systems and CPU counts may favour others.
pub const DEFAULT_WORKERS: usize = 4;

/// The result of unpacking one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// sha256 of the uncompressed tar stream, trailing zero blocks included:
    /// the layer's diff_id in the image config.
    pub diff_id: Digest,
    /// Number of tar entries applied, whiteouts included.
    pub files: u64,
    /// Size of the uncompressed tar stream in bytes.
    pub bytes: u64,
}

/// Unpacks the layer tar read from `reader`, compressed as `compression`,
/// into `dest`, which must be an existing empty directory.
///
/// The stream is read to its end, so `diff_id` covers every byte. Entries
/// are applied in tar order and a later entry replaces an earlier one of
/// the same name, except that a directory keeps the children of the
/// directory it replaces. Nothing is synced: call
/// [`crate::snapshot::sync_dir`] before recording the result.
pub fn unpack_layer(
    reader: impl Read,
    compression: Compression,
    dest: &Path,
) -> Result<UnpackStats, UnpackError> {
    unpack_layer_with_workers(reader, compression, dest, DEFAULT_WORKERS)
}

/// Like [`unpack_layer`] with `workers` threads creating files. With 0
/// workers every entry is applied on the calling thread.
pub fn unpack_layer_with_workers(
    reader: impl Read,
    compression: Compression,
    dest: &Path,
    workers: usize,
) -> Result<UnpackStats, UnpackError> {
    let mut root = Root::open(dest)?;
    let buffered = BufReader::with_capacity(BUFFER_SIZE, reader);
    let decoder = compression.decoder(buffered).map_err(UnpackError::Read)?;
    let hashing = HashingReader::new(decoder);
    let mut archive = tar::Archive::new(BufReader::with_capacity(BUFFER_SIZE, hashing));

    let mut unpacker = Unpacker {
        buffer: vec![0; BUFFER_SIZE],
        directory_times: HashMap::new(),
        files: 0,
        created: HashSet::new(),
        queued: HashSet::new(),
    };
    let (shared, sender) = Shared::new();
    let applied = std::thread::scope(|scope| {
        let pool = Pool::start(scope, &shared, sender, workers);
        unpacker.apply_all(&mut root, &mut archive, &pool)
        // Dropping the pool lets the workers end once their jobs are done,
        // and the scope waits for them.
    });
    // A worker's error comes from an entry before the one the reading
    // thread stopped at, so it is the one that applying in order meets.
    if let Some(error) = shared.take_error() {
        return Err(error);
    }
    applied?;
    unpacker.set_directory_times(&mut root)?;

    // tar stops at the first zero block; the digest covers the rest too.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(UnpackError::Read)?;
    let (hex, bytes) = rest.into_inner().finish();
    let diff_id = format!("sha256:{hex}")
        .parse()
        .expect("a sha256 hex string is a valid digest");
    Ok(UnpackStats {
        diff_id,
        files: unpacker.files,
        bytes,
    })
}

struct Unpacker {
    buffer: Vec<u8>,
    /// Times of the directories listed in the tar, set once all entries
    /// exist because creating a child changes its parent's mtime.
    directory_times: HashMap<PathBuf, (EntryName, Timestamps)>,
    files: u64,
    /// Every name an entry created or removed, with all its ancestors.
    created: HashSet<PathBuf>,
    /// Names handed to the workers since they were last idle.
    queued: HashSet<PathBuf>,
}

impl Unpacker {
    fn apply_all<R: Read>(
        &mut self,
        root: &mut Root,
        archive: &mut tar::Archive<R>,
        pool: &Pool<'_>,
    ) -> Result<(), UnpackError> {
        for entry in archive.entries().map_err(UnpackError::Read)? {
            let mut entry = entry.map_err(UnpackError::Read)?;
            self.apply(root, &mut entry, pool)?;
            self.files += 1;
        }
        Ok(())
    }

    /// Records `path` and its ancestors as used and returns whether `path`
    /// was used before.
    fn claim(&mut self, path: &Path) -> bool {
        if !self.created.insert(path.to_owned()) {
            return true;
        }
        for ancestor in path.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() || !self.created.insert(ancestor.to_owned()) {
                break;
            }
        }
        false
    }

    /// Waits until the workers have created every queued entry.
    fn wait_idle(&mut self, pool: &Pool<'_>) -> Result<(), UnpackError> {
        pool.wait_idle()?;
        self.queued.clear();
        Ok(())
    }

    /// Waits for the workers if `parent` or one of its ancestors is still
    /// queued, so that the lookup of `parent` finds what is really there.
    fn wait_for_queued_parent(
        &mut self,
        parent: &Path,
        pool: &Pool<'_>,
    ) -> Result<(), UnpackError> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let queued = parent
            .ancestors()
            .take_while(|ancestor| !ancestor.as_os_str().is_empty())
            .any(|ancestor| self.queued.contains(ancestor));
        if queued {
            self.wait_idle(pool)?;
        }
        Ok(())
    }

    fn apply<R: Read>(
        &mut self,
        root: &mut Root,
        entry: &mut tar::Entry<'_, R>,
        pool: &Pool<'_>,
    ) -> Result<(), UnpackError> {
        let raw_name = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw_name).into_owned();
        let name = name::normalise(&raw_name, &display)?;
        let entry_type = entry.header().entry_type();
        let Some(file) = name.file.clone() else {
            return self.apply_root(root, entry, entry_type, &display);
        };
        self.wait_for_queued_parent(&name.parent, pool)?;

        match whiteout::classify(&file, &display)? {
            Whiteout::Regular => {}
            Whiteout::Ignored => return Ok(()),
            Whiteout::Opaque => {
                let dir = root.parent(&name.parent, &display)?;
                return whiteout::mark_opaque(dir, &display);
            }
            Whiteout::Delete(deleted) => {
                if self.claim(&name.parent.join(deleted)) {
                    self.wait_idle(pool)?;
                }
                let dir = root.parent(&name.parent, &display)?;
                whiteout::delete(dir, deleted, &display)?;
                root.invalidate();
                self.forget_directory_times(&name.parent.join(deleted));
                return Ok(());
            }
        }

        let metadata = Metadata::read(entry, &display)?;
        let relative = name.relative();
        // An entry that replaces an earlier one is applied here once the
        // workers are idle, because replacing may remove a directory and
        // its recorded times.
        let reused = self.claim(&relative);
        if reused || entry_type == EntryType::Link {
            self.wait_idle(pool)?;
        }
        let mut directory_times = None;
        let replaced = match entry_type {
            EntryType::Regular | EntryType::Continuous
                if !reused && entry.size() <= MAX_QUEUED_FILE =>
            {
                let dir = root.shared_parent(&name.parent, &display)?;
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut data).map_err(UnpackError::Read)?;
                pool.submit(Job::File {
                    dir,
                    name: file,
                    display,
                    metadata,
                    data,
                })?;
                self.queued.insert(relative);
                return Ok(());
            }
            EntryType::Symlink if !reused => {
                let target = link_name(entry, &display)?;
                let dir = root.shared_parent(&name.parent, &display)?;
                pool.submit(Job::Symlink {
                    dir,
                    name: file,
                    display,
                    metadata,
                    target: OsString::from_vec(target),
                })?;
                self.queued.insert(relative);
                return Ok(());
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let dir = root.parent(&name.parent, &display)?;
                create::regular_file(dir, &file, entry, &metadata, &mut self.buffer, &display)?
            }
            EntryType::Directory => {
                let dir = root.parent(&name.parent, &display)?;
                directory_times = Some(metadata.times());
                create::directory(dir, &file, &metadata, &display)?
            }
            EntryType::Symlink => {
                let target = link_name(entry, &display)?;
                let dir = root.parent(&name.parent, &display)?;
                create::symlink(dir, &file, OsStr::from_bytes(&target), &metadata, &display)?
            }
            EntryType::Link => self.hard_link(root, entry, &name, &file, &display)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, device) = node_kind(entry, entry_type, &display)?;
                let dir = root.parent(&name.parent, &display)?;
                create::node(dir, &file, file_type, device, &metadata, &display)?
            }
            other => {
                return Err(UnpackError::rejected(
                    &display,
                    format!("has the unsupported tar entry type {other:?}"),
                ))
            }
        };
        if replaced {
            root.invalidate();
            self.forget_directory_times(&relative);
        }
        if let Some(times) = directory_times {
            self.directory_times.insert(relative, (name, times));
        }
        Ok(())
    }

    /// Drops the recorded times of `path` and the directories below it,
    /// which a later entry removed.
    fn forget_directory_times(&mut self, path: &Path) {
        self.directory_times
            .retain(|recorded, _| !recorded.starts_with(path));
    }

    /// Applies an entry that names the layer root itself, like `./`.
    fn apply_root<R: Read>(
        &mut self,
        root: &mut Root,
        entry: &mut tar::Entry<'_, R>,
        entry_type: EntryType,
        display: &str,
    ) -> Result<(), UnpackError> {
        if entry_type != EntryType::Directory {
            return Err(UnpackError::rejected(
                display,
                "names the layer root but is not a directory",
            ));
        }
        let metadata = Metadata::read(entry, display)?;
        let dir = root.lookup(Path::new(""), display)?;
        metadata::apply_at(dir.as_fd(), OsStr::new("."), &metadata, false, display)?;
        let root_name = EntryName {
            parent: PathBuf::new(),
            file: None,
        };
        self.directory_times
            .insert(PathBuf::from("."), (root_name, metadata.times()));
        Ok(())
    }

    fn hard_link<R: Read>(
        &mut self,
        root: &mut Root,
        entry: &tar::Entry<'_, R>,
        name: &EntryName,
        file: &OsStr,
        display: &str,
    ) -> Result<bool, UnpackError> {
        let raw_target = link_name(entry, display)?;
        let target_display = String::from_utf8_lossy(&raw_target).into_owned();
        let target = name::normalise(&raw_target, &target_display).map_err(|e| match e {
            UnpackError::Rejected { reason, .. } => UnpackError::rejected(
                display,
                format!("is a hard link whose target {target_display:?} {reason}"),
            ),
            other => other,
        })?;
        let Some(target_file) = &target.file else {
            return Err(UnpackError::rejected(
                display,
                "is a hard link to the layer root",
            ));
        };
        if target == *name {
            return Err(UnpackError::rejected(display, "is a hard link to itself"));
        }
        let target_dir = root.lookup(&target.parent, display).map_err(|e| match e {
            UnpackError::Entry { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                UnpackError::rejected(
                    display,
                    format!(
                        "is a hard link to {target_display:?}, which is not an earlier entry of this layer"
                    ),
                )
            }
            other => other,
        })?;
        let dir = root.parent(&name.parent, display)?;
        create::hard_link(
            target_dir.as_fd(),
            target_file,
            dir,
            file,
            display,
            &target_display,
        )
    }

    /// Sets the times of every directory listed in the tar, children before
    /// their parents.
    fn set_directory_times(&mut self, root: &mut Root) -> Result<(), UnpackError> {
        let mut directories: Vec<_> = self.directory_times.drain().collect();
        directories.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, (name, times)) in directories {
            let display = path.display().to_string();
            match &name.file {
                Some(file) => {
                    let dir = root.parent(&name.parent, &display)?;
                    metadata::set_times_at(dir, file, &times, &display)?;
                }
                None => rustix::fs::futimens(root.fd(), &times)
                    .map_err(|e| UnpackError::entry(&display, "set the times of", e))?,
            }
        }
        Ok(())
    }
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, display: &str) -> Result<Vec<u8>, UnpackError> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(target.into_owned()),
        _ => Err(UnpackError::rejected(display, "is a link without a target")),
    }
}

fn node_kind<R: Read>(
    entry: &tar::Entry<'_, R>,
    entry_type: EntryType,
    display: &str,
) -> Result<(FileType, rustix::fs::Dev), UnpackError> {
    let header = entry.header();
    let number = |value: io::Result<Option<u32>>| {
        value
            .map(|v| v.unwrap_or(0))
            .map_err(|e| UnpackError::entry(display, "read the device number of", e))
    };
    let major = number(header.device_major())?;
    let minor = number(header.device_minor())?;
    let file_type = match entry_type {
        EntryType::Char => FileType::CharacterDevice,
        EntryType::Block => FileType::BlockDevice,
        _ => FileType::Fifo,
    };
    Ok((file_type, rustix::fs::makedev(major, minor)))
}
