//! The content store: verified blobs by digest, unpacked layer snapshots,
//! container rootfs directories, and their metadata in redb.
//!
//! Layout under ROOT:
//! - `content/blobs/sha256/<hex>`: verified blobs, written through
//!   `content/ingest/<hex>/data`;
//! - `meta.redb`: image records, snapshot records, rootfs leases and blob
//!   labels;
//! - `snapshots/<n>/fs`: one unpacked layer each, made as
//!   `snapshots/tmp-<random>` and renamed once synced;
//! - `rootfs/<container id>/{upper,work}`: a container's writable layer;
//! - `lock`: flocked by the one process that has the store open.

mod content;
mod error;
mod gc;
mod image;
mod meta;
mod rootfs;
mod snapshots;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use nix::fcntl::Flock;
use oci_spec::image::Digest;
use redb::Database;

pub use content::{sha256_digest, BlobWriter};
pub use error::{Result, StoreError};
pub use gc::{CheckReport, CorruptBlob, GcReport, ImageProblem};
pub use image::{is_index_media_type, INDEX_MEDIA_TYPES};
pub use meta::{ImageRecord, RootfsLease, SnapshotRecord, SOURCE_LABEL_PREFIX};
pub use rootfs::{validate_id, RootfsMount, RootfsMounts};
pub use snapshots::TmpSnapshot;

/// A handle on the store; clones share the same database and locks.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    db: Database,
    _lock: Flock<File>,
    /// Serialises numbering and renaming snapshot dirs with gc removing them.
    snapshot_lock: Mutex<()>,
    /// Blob digests and diff_ids that running pulls and imports use before
    /// an image record refers to them; gc keeps them.
    pins: Mutex<HashMap<Digest, usize>>,
    /// One async lock per layer digest so that concurrent pulls in this
    /// process download and unpack each layer once.
    layer_locks: Mutex<HashMap<Digest, Weak<tokio::sync::Mutex<()>>>>,
    gc_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root()).finish()
    }
}

impl Store {
    /// Opens the store at `root`, creating it when missing, and holds an
    /// exclusive flock on `ROOT/lock` until the last clone is dropped.
    /// Removes what a crash can leave: unrecorded snapshot dirs.
    pub fn open(root: &Path) -> Result<Self> {
        for dir in [
            "content/blobs/sha256",
            "content/ingest",
            "snapshots",
            "rootfs",
            "tmp",
        ] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(|e| StoreError::io("create", path, e))?;
        }
        let lock_path = root.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| StoreError::io("open", &lock_path, e))?;
        let Some(mut lock) = content::flock(file, &lock_path, false)? else {
            let pid = fs::read_to_string(&lock_path).unwrap_or_default();
            return Err(StoreError::Locked {
                root: root.to_path_buf(),
                lock: lock_path,
                pid: pid.trim().to_string(),
            });
        };
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .map_err(|e| StoreError::io("write", &lock_path, e))?;

        let db_path = root.join("meta.redb");
        let db = Database::create(&db_path).map_err(|e| StoreError::Database {
            path: db_path.clone(),
            source: Box::new(e.into()),
        })?;
        let store = Self {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                db,
                _lock: lock,
                snapshot_lock: Mutex::new(()),
                pins: Mutex::new(HashMap::new()),
                layer_locks: Mutex::new(HashMap::new()),
                gc_lock: Mutex::new(()),
            }),
        };
        store.create_tables()?;
        store.remove_unrecorded_snapshots()?;
        store.remove_scratch_dirs()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    fn create_tables(&self) -> Result<()> {
        self.write_txn(|txn| {
            for table in [
                meta::IMAGES,
                meta::SNAPSHOTS,
                meta::LEASES,
                meta::BLOB_LABELS,
            ] {
                txn.open_table(table).map_err(|e| self.db_error(e))?;
            }
            txn.open_table(meta::COUNTERS)
                .map_err(|e| self.db_error(e))?;
            Ok(())
        })
    }

    /// Keeps `digests` (blob digests or diff_ids) from gc until the returned
    /// guard is dropped.
    pub fn pin<'a>(&self, digests: impl IntoIterator<Item = &'a Digest>) -> PinGuard {
        let mut guard = PinGuard {
            store: self.clone(),
            digests: Vec::new(),
        };
        guard.add(digests);
        guard
    }

    pub(crate) fn is_pinned(&self, digest: &Digest) -> bool {
        self.inner.pins.lock().unwrap().contains_key(digest)
    }

    /// Returns the async lock of one layer digest, shared by every caller
    /// in this process that requests the same digest while it is held.
    pub fn layer_lock(&self, digest: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.layer_locks.lock().unwrap();
        locks.retain(|_, weak| weak.strong_count() > 0);
        if let Some(lock) = locks.get(digest).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(digest.clone(), Arc::downgrade(&lock));
        lock
    }
}

/// A directory under `ROOT/tmp`, removed on drop and at the next
/// [`Store::open`] after a crash.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

impl Store {
    /// Creates an empty directory under `ROOT/tmp`, on the store's file
    /// system, for unpacking archives and building exports.
    pub fn scratch_dir(&self, prefix: &str) -> Result<ScratchDir> {
        let path = self
            .root()
            .join("tmp")
            .join(format!("{prefix}-{}", snapshots::random_suffix()));
        fs::create_dir_all(&path).map_err(|e| StoreError::io("create", &path, e))?;
        Ok(ScratchDir { path })
    }

    fn remove_scratch_dirs(&self) -> Result<()> {
        let tmp = self.root().join("tmp");
        let entries = fs::read_dir(&tmp).map_err(|e| StoreError::io("read", &tmp, e))?;
        for entry in entries {
            let path = entry.map_err(|e| StoreError::io("read", &tmp, e))?.path();
            fs::remove_dir_all(&path).map_err(|e| StoreError::io("remove", &path, e))?;
        }
        Ok(())
    }
}

/// Digests kept from gc while it lives.
pub struct PinGuard {
    store: Store,
    digests: Vec<Digest>,
}

impl PinGuard {
    pub fn add<'a>(&mut self, digests: impl IntoIterator<Item = &'a Digest>) {
        let mut pins = self.store.inner.pins.lock().unwrap();
        for digest in digests {
            *pins.entry(digest.clone()).or_default() += 1;
            self.digests.push(digest.clone());
        }
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut pins = self.store.inner.pins.lock().unwrap();
        for digest in &self.digests {
            if let Some(count) = pins.get_mut(digest) {
                *count -= 1;
                if *count == 0 {
                    pins.remove(digest);
                }
            }
        }
    }
}
