//! Garbage collection and consistency checks.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use sha2::{Digest as _, Sha256};

use super::content::{digest_from_hasher, lock_dir};
use super::error::{Result, StoreError};
use super::meta::BLOB_LABELS;
use super::Store;

/// Counts and bytes removed by [`Store::gc`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: u64,
    pub snapshots_removed: u64,
    pub ingests_removed: u64,
    /// Disk space freed, from the allocated blocks of the removed files.
    pub bytes_freed: u64,
}

/// A blob whose file does not hash to its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptBlob {
    pub path: PathBuf,
    /// The digest the name promises, when the name is a valid sha256 hex.
    pub expected: Option<Digest>,
    pub actual: Digest,
}

/// An image that cannot be run or pushed as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProblem {
    pub image: String,
    pub missing_blobs: Vec<Digest>,
    pub missing_snapshots: Vec<Digest>,
}

/// Findings of [`Store::check`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub blobs_checked: u64,
    pub corrupt_blobs: Vec<CorruptBlob>,
    /// diff_ids recorded as snapshots whose directory is missing.
    pub missing_snapshots: Vec<Digest>,
    pub images: Vec<ImageProblem>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt_blobs.is_empty() && self.missing_snapshots.is_empty() && self.images.is_empty()
    }
}

/// Returns the disk space the files below `path` take, from their blocks.
fn disk_usage(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    disk_usage_once(path, &mut seen)
}

/// Returns the blocks below `path`, counting a file with several hard links
/// once. `seen` contains the (device, inode) of each file counted.
fn disk_usage_once(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
        return 0;
    }
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                total += disk_usage_once(&entry.path(), seen);
            }
        }
    }
    total
}

fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(digest_from_hasher(hasher));
        }
        hasher.update(&buf[..n]);
    }
}

fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("read", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("read", dir, e))?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    out.sort();
    Ok(out)
}

impl Store {
    /// Removes blobs, snapshots and ingest dirs that no image record,
    /// rootfs lease or running pull refers to. An ingest dir whose writer
    /// still holds its lock is kept.
    pub fn gc(&self) -> Result<GcReport> {
        let _gc = self.inner.gc_lock.lock().unwrap();
        let mut marked_blobs = HashSet::new();
        let mut marked_layers = HashSet::new();
        for image in self.list_images()? {
            let blobs = self.image_blobs(&image)?;
            marked_blobs.extend(blobs.present);
            marked_layers.extend(blobs.diff_ids);
        }
        for (_, lease) in self.list_leases()? {
            marked_layers.extend(lease.layers);
        }
        let mut report = GcReport::default();

        let mut removed_blobs = Vec::new();
        for (name, path) in list_dir(&self.blobs_dir())? {
            let digest = Digest::try_from(format!("sha256:{name}")).ok();
            let keep = digest
                .as_ref()
                .is_some_and(|d| marked_blobs.contains(d) || self.is_pinned(d));
            if keep {
                continue;
            }
            let bytes = disk_usage(&path);
            fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
            report.blobs_removed += 1;
            report.bytes_freed += bytes;
            removed_blobs.extend(digest);
        }
        if !removed_blobs.is_empty() {
            self.write_txn(|txn| {
                let mut labels = txn.open_table(BLOB_LABELS).map_err(|e| self.db_error(e))?;
                for digest in &removed_blobs {
                    labels
                        .remove(digest.as_ref())
                        .map_err(|e| self.db_error(e))?;
                }
                Ok(())
            })?;
        }

        {
            let _snapshots = self.snapshot_lock();
            for (key, record) in self.list_snapshots()? {
                let keep = Digest::try_from(key.as_str())
                    .is_ok_and(|d| marked_layers.contains(&d) || self.is_pinned(&d));
                if keep {
                    continue;
                }
                let bytes = disk_usage(&self.snapshots_root().join(record.n.to_string()));
                self.remove_snapshot_locked(&key, &record)?;
                report.snapshots_removed += 1;
                report.bytes_freed += bytes;
            }
        }

        for (_, path) in list_dir(&self.ingest_root())? {
            // Locked by a running writer: leave it alone.
            let Some(_lock) = lock_dir(&path, false)? else {
                continue;
            };
            let bytes = disk_usage(&path);
            fs::remove_dir_all(&path).map_err(|e| StoreError::io("remove", &path, e))?;
            report.ingests_removed += 1;
            report.bytes_freed += bytes;
        }
        tracing::info!(
            blobs = report.blobs_removed,
            snapshots = report.snapshots_removed,
            ingests = report.ingests_removed,
            bytes = report.bytes_freed,
            "gc finished"
        );
        Ok(report)
    }

    /// Rehashes every blob and lists corrupt blobs, snapshot records whose
    /// directory is missing, and images missing blobs or snapshots.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        for (name, path) in list_dir(&self.blobs_dir())? {
            let actual = hash_file(&path).map_err(|e| StoreError::io("read", &path, e))?;
            report.blobs_checked += 1;
            let expected = Digest::try_from(format!("sha256:{name}")).ok();
            if expected.as_ref() != Some(&actual) {
                report.corrupt_blobs.push(CorruptBlob {
                    path,
                    expected,
                    actual,
                });
            }
        }
        let corrupt: HashSet<Digest> = report
            .corrupt_blobs
            .iter()
            .filter_map(|blob| blob.expected.clone())
            .collect();
        for (key, record) in self.list_snapshots()? {
            let dir = self.snapshots_root().join(record.n.to_string()).join("fs");
            if !dir.is_dir() {
                if let Ok(digest) = Digest::try_from(key.as_str()) {
                    report.missing_snapshots.push(digest);
                }
            }
        }
        for image in self.list_images()? {
            let blobs = self.image_blobs(&image)?;
            let mut missing_blobs: Vec<Digest> = blobs.missing.into_iter().collect();
            missing_blobs.extend(blobs.present.intersection(&corrupt).cloned());
            missing_blobs.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
            let missing_snapshots: Vec<Digest> = match self.image_diff_ids(&image) {
                Ok(ids) => ids
                    .into_iter()
                    .filter(|id| self.snapshot_dir(id).is_none())
                    .collect(),
                Err(_) => Vec::new(),
            };
            if !missing_blobs.is_empty() || !missing_snapshots.is_empty() {
                report.images.push(ImageProblem {
                    image: image.name.clone(),
                    missing_blobs,
                    missing_snapshots,
                });
            }
        }
        Ok(report)
    }
}
