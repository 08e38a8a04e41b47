//! Named and anonymous volumes of the local driver: one directory per
//! volume below `<root>/volumes`, holding the data in `_data/` and the
//! record in `volume.json`.
//!
//! Create, remove and prune take an exclusive `flock` on
//! `<root>/volumes/.lock`, so concurrent hullctl commands see each volume
//! either whole or absent. Initialisation from an image and removal also
//! lock the volume's own directory, so a volume is never removed while its
//! content is being copied, and never filled twice.
//!
//! A volume appears by a rename of a complete staging directory
//! (`.creating-<name>`) and disappears by a rename to `.removing-<name>-<n>`
//! before its files are deleted. A crash therefore leaves either the whole
//! volume or a hidden leftover, which the next create, remove or prune
//! deletes while it holds the lock. Volume names never start with a dot,
//! so these names cannot collide with a volume. A first fill from an image
//! that a crash interrupts is emptied and redone by the next
//! initialisation, as [`VolumeRecord::filling`] marks it.

pub mod command;
mod copy;
mod request;
mod resolve;

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rustix::fs::{self as rfs, FlockOperation, Mode, OFlags, RenameFlags};
use serde::{Deserialize, Serialize};

pub use request::{
    normalise_target, parse_mount_flag, parse_size, parse_tmpfs_flag, parse_volume_flag,
    validate_volume_name, MountKind, MountRequest,
};
pub use resolve::ResolvedMount;

use crate::paths::Paths;

/// The record file in each volume directory.
const RECORD_FILE: &str = "volume.json";
/// The data directory in each volume directory, which containers mount.
const DATA_DIR: &str = "_data";
/// The lock file of `<root>/volumes`.
const LOCK_FILE: &str = ".lock";
/// Prefix of a volume directory that is being created.
const CREATING_PREFIX: &str = ".creating-";
/// Prefix of a volume directory that is being removed.
const REMOVING_PREFIX: &str = ".removing-";

/// Errors that callers tell apart from other failures.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error(
        "volume {name} is in use by container {}: remove the container first",
        containers.join(", ")
    )]
    InUse {
        name: String,
        containers: Vec<String>,
    },
}

/// A volume as stored in its `volume.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    /// Always `local`: the volume is a directory on the host.
    pub driver: String,
    /// The `_data` directory that containers mount.
    pub mountpoint: PathBuf,
    /// Creation time, RFC 3339 in UTC.
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// True for a volume created without a name (`-v /dst` or an image's
    /// `VOLUME`), which `volume prune` removes by default.
    #[serde(default)]
    pub anonymous: bool,
    /// True once the volume was found non-empty or filled from an image,
    /// after which it is never filled from an image again.
    #[serde(default)]
    pub initialised: bool,
    /// True while a first fill from an image runs. Found set by the next
    /// initialisation, it marks a fill that a crash interrupted.
    #[serde(default)]
    pub filling: bool,
}

/// The volumes that `prune` removed and the space they used.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Names of the removed volumes, in name order.
    pub removed: Vec<String>,
    /// Total size in bytes of the files in the removed volumes.
    pub reclaimed_bytes: u64,
}

/// The volumes below `<root>/volumes`.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    pub fn new(paths: &Paths) -> Volumes {
        Volumes {
            dir: paths.volumes(),
        }
    }

    /// Creates the volume `name`, or an anonymous volume with a random
    /// 64-hex-digit name when `name` is `None`. A volume of that name that
    /// exists already is returned unchanged, labels included.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> anyhow::Result<VolumeRecord> {
        let (name, anonymous) = match name {
            Some(name) => {
                validate_volume_name(name)?;
                (name.to_string(), false)
            }
            None => (random_name()?, true),
        };
        let _lock = self.lock()?;
        self.remove_leftovers();
        match self.read_record(&name) {
            Ok(record) => return Ok(record),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(err),
        }

        let record = VolumeRecord {
            name: name.clone(),
            driver: String::from("local"),
            mountpoint: self.dir.join(&name).join(DATA_DIR),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels,
            anonymous,
            initialised: false,
            filling: false,
        };
        let staging = self.dir.join(format!("{CREATING_PREFIX}{name}"));
        let build = || -> anyhow::Result<()> {
            make_dir(&staging, 0o700)?;
            let data = staging.join(DATA_DIR);
            make_dir(&data, 0o755)?;
            let staging_fd = open_dir(&staging)?;
            write_record(staging_fd.as_fd(), &record)
                .with_context(|| format!("failed to write {}", staging.display()))?;
            let volumes = open_dir(&self.dir)?;
            rfs::renameat_with(
                &volumes,
                staging.file_name().unwrap_or_default(),
                &volumes,
                name.as_str(),
                RenameFlags::NOREPLACE,
            )
            .with_context(|| format!("failed to move {} into place", staging.display()))?;
            rfs::fsync(&volumes)
                .with_context(|| format!("failed to sync {}", self.dir.display()))?;
            Ok(())
        };
        if let Err(err) = build() {
            let _ = fs::remove_dir_all(&staging);
            return Err(err.context(format!("failed to create volume {name}")));
        }
        Ok(record)
    }

    /// Returns every volume, sorted by name. A volume whose record cannot
    /// be read is reported on stderr and left out.
    pub fn list(&self) -> anyhow::Result<Vec<VolumeRecord>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read {}", self.dir.display()))
            }
        };
        let mut records = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to read {}", self.dir.display()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match self.read_record(&name) {
                Ok(record) => records.push(record),
                // Removed since the directory was read.
                Err(err) if is_not_found(&err) => {}
                Err(err) => eprintln!("hullctl: skipping volume {name}: {err:#}"),
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Returns the volume `name`, or [`VolumeError::NotFound`].
    pub fn inspect(&self, name: &str) -> anyhow::Result<VolumeRecord> {
        validate_volume_name(name)?;
        self.read_record(name)
    }

    /// Removes the volume `name` and its data, unless `in_use(name)` names
    /// containers that use it ([`VolumeError::InUse`], nothing removed).
    /// `force` makes an absent volume no error, but it never removes a
    /// volume in use.
    pub fn remove(
        &self,
        name: &str,
        in_use: &dyn Fn(&str) -> Vec<String>,
        force: bool,
    ) -> anyhow::Result<()> {
        validate_volume_name(name)?;
        let _lock = self.lock()?;
        self.remove_leftovers();
        match self.remove_locked(name, in_use) {
            Err(err) if force && is_not_found(&err) => Ok(()),
            result => result,
        }
    }

    /// Removes every volume that no container uses: anonymous volumes
    /// only, or named ones too when `all` is set.
    pub fn prune(
        &self,
        in_use: &dyn Fn(&str) -> Vec<String>,
        all: bool,
    ) -> anyhow::Result<PruneReport> {
        let _lock = self.lock()?;
        self.remove_leftovers();
        let mut report = PruneReport::default();
        for record in self.list()? {
            if !(all || record.anonymous) || !in_use(&record.name).is_empty() {
                continue;
            }
            let size = data_size(&record.mountpoint);
            match self.remove_locked(&record.name, in_use) {
                Ok(()) => {
                    report.removed.push(record.name);
                    report.reclaimed_bytes += size;
                }
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(report)
    }

    /// Removes a volume while the caller holds the lock of `<root>/volumes`.
    fn remove_locked(
        &self,
        name: &str,
        in_use: &dyn Fn(&str) -> Vec<String>,
    ) -> anyhow::Result<()> {
        let path = self.dir.join(name);
        // Waits for an initialisation of this volume to finish.
        let _volume_lock = self.lock_volume(name)?;
        let containers = in_use(name);
        if !containers.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                containers,
            }
            .into());
        }

        let aside = self
            .dir
            .join(format!("{REMOVING_PREFIX}{name}-{}", std::process::id()));
        fs::rename(&path, &aside).with_context(|| {
            format!(
                "failed to remove volume {name}: rename of {}",
                path.display()
            )
        })?;
        if let Err(err) = File::open(&self.dir).and_then(|dir| dir.sync_all()) {
            eprintln!("hullctl: failed to sync {}: {err}", self.dir.display());
        }
        // The volume is gone once renamed. What is left on failure is
        // deleted by the next create, remove or prune.
        if let Err(err) = fs::remove_dir_all(&aside) {
            eprintln!(
                "hullctl: volume {name} is removed, but deleting its files in {} failed: {err}",
                aside.display()
            );
        }
        Ok(())
    }

    /// Deletes the staging and removal directories that a crash left.
    fn remove_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(CREATING_PREFIX) || name.starts_with(REMOVING_PREFIX) {
                let path = entry.path();
                if let Err(err) = fs::remove_dir_all(&path) {
                    eprintln!("hullctl: failed to delete {}: {err}", path.display());
                }
            }
        }
    }

    /// Reads `<name>/volume.json`, or returns [`VolumeError::NotFound`]
    /// when the volume directory does not exist.
    fn read_record(&self, name: &str) -> anyhow::Result<VolumeRecord> {
        let dir = self.dir.join(name);
        let dir_fd = match open_dir(&dir) {
            Ok(fd) => fd,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()).into())
            }
            Err(err) => {
                return Err(err).with_context(|| format!("failed to open {}", dir.display()))
            }
        };
        let mut record = read_record_at(dir_fd.as_fd())
            .with_context(|| format!("failed to read {}", dir.join(RECORD_FILE).display()))?;
        if record.name != name {
            bail!(
                "{} names volume {:?} instead of {name:?}",
                dir.join(RECORD_FILE).display(),
                record.name
            );
        }
        // The store may have moved since the record was written.
        record.mountpoint = dir.join(DATA_DIR);
        Ok(record)
    }

    /// Takes the lock of `<root>/volumes`, creating the directory.
    fn lock(&self) -> anyhow::Result<File> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("failed to create {}", self.dir.display()))?;
        let path = self.dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        rfs::flock(&file, FlockOperation::LockExclusive)
            .with_context(|| format!("failed to lock {}", path.display()))?;
        Ok(file)
    }

    /// Fills the empty volume `name` from the directory at `target` in
    /// `rootfs`, once. Returns whether anything was copied.
    ///
    /// The volume's directory stays locked throughout, so a concurrent
    /// initialisation waits and then finds the volume initialised, and a
    /// concurrent removal waits for the copy to end.
    pub fn initialise(&self, name: &str, rootfs: &Path, target: &str) -> anyhow::Result<bool> {
        validate_volume_name(name)?;
        let path = self.dir.join(name);
        let volume = self.lock_volume(name)?;
        let record_path = path.join(RECORD_FILE);
        let mut record = read_record_at(volume.as_fd())
            .with_context(|| format!("failed to read {}", record_path.display()))?;
        if record.initialised {
            return Ok(false);
        }
        let data_path = path.join(DATA_DIR);
        let data = rfs::openat(
            &volume,
            DATA_DIR,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("failed to open {}", data_path.display()))?;
        let save = |record: &VolumeRecord| {
            write_record(volume.as_fd(), record)
                .with_context(|| format!("failed to write {}", record_path.display()))
        };

        if record.filling {
            // A crash interrupted an earlier fill, whose partial copy goes.
            empty_dir(&data_path);
        }
        if !is_empty_dir(data.as_fd())
            .with_context(|| format!("failed to read {}", data_path.display()))?
        {
            record.initialised = true;
            record.filling = false;
            save(&record)?;
            return Ok(false);
        }

        record.filling = true;
        save(&record)?;
        let copied = match copy::copy_image_content(rootfs, target, data.as_fd()) {
            Ok(copied) => copied,
            Err(err) => {
                empty_dir(&data_path);
                record.filling = false;
                if let Err(save_err) = save(&record) {
                    eprintln!("hullctl: {save_err:#}");
                }
                return Err(err.context(format!(
                    "failed to copy {target} of the image into volume {name}"
                )));
            }
        };
        if copied {
            // The record must not claim data that a crash could lose.
            rfs::syncfs(&data)
                .with_context(|| format!("failed to sync {}", data_path.display()))?;
        }
        // With nothing copied, a later container whose image has content
        // at its mount point may still fill the volume.
        record.initialised = copied;
        record.filling = false;
        save(&record)?;
        Ok(copied)
    }

    /// Locks the directory of volume `name` and checks that a removal did
    /// not rename it while this waited for the lock.
    fn lock_volume(&self, name: &str) -> anyhow::Result<OwnedFd> {
        let path = self.dir.join(name);
        let volume = match lock_dir(&path) {
            Ok(fd) => fd,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()).into())
            }
            Err(err) => {
                return Err(err).with_context(|| format!("failed to lock {}", path.display()))
            }
        };
        let locked = rfs::fstat(&volume)?;
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.dev() == locked.st_dev && meta.ino() == locked.st_ino => Ok(volume),
            _ => Err(VolumeError::NotFound(name.to_string()).into()),
        }
    }
}

/// True when `err` is [`VolumeError::NotFound`].
pub fn is_not_found(err: &anyhow::Error) -> bool {
    matches!(err.downcast_ref(), Some(VolumeError::NotFound(_)))
}

fn random_name() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("failed to read /dev/urandom for an anonymous volume name")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn make_dir(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    // The umask may have cleared bits of `mode`.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("failed to set the mode of {}", path.display()))
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory at `path` and takes an exclusive `flock` on it.
fn lock_dir(path: &Path) -> io::Result<OwnedFd> {
    let fd = open_dir(path)?;
    rfs::flock(&fd, FlockOperation::LockExclusive)?;
    Ok(fd)
}

fn read_record_at(dir: BorrowedFd<'_>) -> anyhow::Result<VolumeRecord> {
    let fd = rfs::openat(
        dir,
        RECORD_FILE,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut text = String::new();
    File::from(fd).read_to_string(&mut text)?;
    Ok(serde_json::from_str(&text)?)
}

/// Replaces `volume.json` in `dir` by writing a temporary file, syncing it
/// and renaming it over the old one, so a reader sees the old record or
/// the new one.
fn write_record(dir: BorrowedFd<'_>, record: &VolumeRecord) -> anyhow::Result<()> {
    const TEMPORARY: &str = "volume.json.tmp";
    let fd = rfs::openat(
        dir,
        TEMPORARY,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    let mut file = File::from(fd);
    let mut text = serde_json::to_vec_pretty(record)?;
    text.push(b'\n');
    file.write_all(&text)?;
    file.sync_all()?;
    rfs::renameat(dir, TEMPORARY, dir, RECORD_FILE)?;
    rfs::fsync(dir)?;
    Ok(())
}

fn is_empty_dir(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let mut entries = rfs::Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Deletes everything in `dir`, reporting failures on stderr.
fn empty_dir(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        if let Err(err) = removed {
            eprintln!("hullctl: failed to delete {}: {err}", path.display());
        }
    }
}

/// Returns the total size in bytes of the files below `dir`, counting a
/// file with several hard links once. Symlinks are not followed, and
/// entries that cannot be read count as empty.
fn data_size(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.nlink() < 2 || seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests;
