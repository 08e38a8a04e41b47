//! Snapshot directories: one unpacked layer each, in `snapshots/<n>/fs`.
//!
//! A layer is unpacked into `snapshots/tmp-<random>/fs`, synced, renamed to
//! `snapshots/<n>` and only then recorded, so a record always names a
//! complete directory. A crash leaves at most a tmp dir or an unrecorded
//! numbered dir, and [`Store::open`] removes both.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::Digest;
use redb::ReadableTable;

use super::content::sync_dir;
use super::error::{Result, StoreError};
use super::meta::{now_unix, SnapshotRecord, COUNTERS, NEXT_SNAPSHOT, SNAPSHOTS};
use super::Store;

const TMP_PREFIX: &str = "tmp-";

/// A directory being filled with one layer; removed on drop unless
/// committed with [`Store::commit_snapshot`].
pub struct TmpSnapshot {
    dir: PathBuf,
    committed: bool,
}

impl TmpSnapshot {
    /// Returns the directory to unpack the layer into.
    pub fn fs_dir(&self) -> PathBuf {
        self.dir.join("fs")
    }
}

impl Drop for TmpSnapshot {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub(crate) fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// Writes the unpacked files below `dir` to disk, with one `syncfs` of the
/// file system that contains them.
pub(crate) fn sync_tree(dir: &Path) -> Result<()> {
    crate::snapshot::sync_dir(dir)?;
    sync_dir(dir)
}

impl Store {
    pub(crate) fn snapshots_root(&self) -> PathBuf {
        self.root().join("snapshots")
    }

    /// Returns the unpacked layer `diff_id`, when it is stored.
    pub fn snapshot_dir(&self, diff_id: &Digest) -> Option<PathBuf> {
        let record = self.snapshot(diff_id).ok()??;
        let dir = self.snapshots_root().join(record.n.to_string()).join("fs");
        dir.is_dir().then_some(dir)
    }

    /// Creates an empty `snapshots/tmp-<random>/fs` to unpack a layer into.
    pub fn new_snapshot(&self) -> Result<TmpSnapshot> {
        let dir = self
            .snapshots_root()
            .join(format!("{TMP_PREFIX}{}", random_suffix()));
        let fs_dir = dir.join("fs");
        fs::create_dir_all(&fs_dir).map_err(|e| StoreError::io("create", &fs_dir, e))?;
        Ok(TmpSnapshot {
            dir,
            committed: false,
        })
    }

    /// Syncs the unpacked layer, renames it to `snapshots/<n>` and records
    /// it under `diff_id`. When another caller recorded the same layer
    /// first, `tmp` is removed and the recorded directory returned.
    pub fn commit_snapshot(
        &self,
        mut tmp: TmpSnapshot,
        diff_id: &Digest,
        size: u64,
    ) -> Result<PathBuf> {
        if let Some(existing) = self.snapshot_dir(diff_id) {
            return Ok(existing);
        }
        sync_tree(&tmp.dir)?;
        let _guard = self.inner.snapshot_lock.lock().unwrap();
        if let Some(existing) = self.snapshot_dir(diff_id) {
            return Ok(existing);
        }
        let n = {
            let txn = self.db().begin_write().map_err(|e| self.db_error(e))?;
            let n = {
                let counters = txn.open_table(COUNTERS).map_err(|e| self.db_error(e))?;
                let value = counters.get(NEXT_SNAPSHOT).map_err(|e| self.db_error(e))?;
                value.map(|v| v.value()).unwrap_or(1)
            };
            txn.abort().map_err(|e| self.db_error(e))?;
            n
        };
        let target = self.snapshots_root().join(n.to_string());
        if target.exists() {
            fs::remove_dir_all(&target).map_err(|e| StoreError::io("remove", &target, e))?;
        }
        fs::rename(&tmp.dir, &target).map_err(|e| StoreError::io("rename", &tmp.dir, e))?;
        tmp.committed = true;
        sync_dir(&self.snapshots_root())?;
        let record = SnapshotRecord {
            n,
            size,
            created: now_unix(),
        };
        let recorded = self.write_txn(|txn| {
            self.put_json(txn, SNAPSHOTS, diff_id.as_ref(), &record)?;
            let mut counters = txn.open_table(COUNTERS).map_err(|e| self.db_error(e))?;
            counters
                .insert(NEXT_SNAPSHOT, n + 1)
                .map_err(|e| self.db_error(e))?;
            Ok(())
        });
        if let Err(e) = recorded {
            let _ = fs::remove_dir_all(&target);
            return Err(e);
        }
        Ok(target.join("fs"))
    }

    /// Removes `snapshots/tmp-*` and numbered dirs without a record.
    pub(crate) fn remove_unrecorded_snapshots(&self) -> Result<()> {
        let _guard = self.inner.snapshot_lock.lock().unwrap();
        let recorded: HashSet<String> = self
            .list_snapshots()?
            .into_iter()
            .map(|(_, record)| record.n.to_string())
            .collect();
        let root = self.snapshots_root();
        let entries = fs::read_dir(&root).map_err(|e| StoreError::io("read", &root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("read", &root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let numbered = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
            if name.starts_with(TMP_PREFIX) || (numbered && !recorded.contains(&name)) {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(|e| StoreError::io("remove", &path, e))?;
            }
        }
        Ok(())
    }

    /// Removes the record of `diff_id` and then its directory. Callers hold
    /// the snapshot lock.
    pub(crate) fn remove_snapshot_locked(
        &self,
        diff_id: &str,
        record: &SnapshotRecord,
    ) -> Result<()> {
        self.write_txn(|txn| self.remove_key(txn, SNAPSHOTS, diff_id).map(drop))?;
        let dir = self.snapshots_root().join(record.n.to_string());
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", dir, e)),
        }
    }

    pub(crate) fn snapshot_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.snapshot_lock.lock().unwrap()
    }
}
