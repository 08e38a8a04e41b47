//! Container rootfs directories: a lease on the image's layers plus
//! `rootfs/<id>/{upper,work}` for an overlay mount.

use std::fs;
use std::path::PathBuf;

use super::error::{Result, StoreError};
use super::meta::{now_unix, ImageRecord, RootfsLease, LEASES};
use super::Store;

/// One mount, in the shape of an OCI runtime spec mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsMount {
    /// Filesystem type: `overlay`.
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// A prepared rootfs: where its writable layer is and how to mount it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsMounts {
    /// `ROOT/rootfs/<id>`.
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Layer directories, top layer first, as `lowerdir=` lists them.
    pub lower: Vec<PathBuf>,
    pub mounts: Vec<RootfsMount>,
}

/// Checks a container id against `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`, which
/// keeps it a single path component.
pub fn validate_id(id: &str) -> Result<()> {
    let bytes = id.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidId(id.to_string()))
    }
}

impl Store {
    fn rootfs_dir(&self, id: &str) -> PathBuf {
        self.root().join("rootfs").join(id)
    }

    /// Leases the image's layers for container `id`, creates its `upper`
    /// and `work` dirs and returns the overlay mount to make. An image
    /// without layers gets an empty lower dir, since overlayfs needs one.
    pub fn prepare_rootfs(&self, id: &str, image: &ImageRecord) -> Result<RootfsMounts> {
        validate_id(id)?;
        let diff_ids = self.image_diff_ids(image)?;
        let mut lower = Vec::with_capacity(diff_ids.len());
        for diff_id in diff_ids.iter().rev() {
            let dir = self
                .snapshot_dir(diff_id)
                .ok_or_else(|| StoreError::SnapshotNotFound(diff_id.clone()))?;
            lower.push(dir);
        }
        let lease = RootfsLease {
            image: image.name.clone(),
            layers: diff_ids,
            created: now_unix(),
        };
        self.write_txn(|txn| {
            let exists: Option<RootfsLease> = self.get_json(LEASES, id)?;
            if exists.is_some() {
                return Err(StoreError::RootfsExists(id.to_string()));
            }
            self.put_json(txn, LEASES, id, &lease)
        })?;

        let dir = self.rootfs_dir(id);
        let upper = dir.join("upper");
        let work = dir.join("work");
        let created = (|| {
            fs::create_dir_all(&upper).map_err(|e| StoreError::io("create", &upper, e))?;
            fs::create_dir_all(&work).map_err(|e| StoreError::io("create", &work, e))?;
            if lower.is_empty() {
                let empty = dir.join("empty");
                fs::create_dir_all(&empty).map_err(|e| StoreError::io("create", &empty, e))?;
                lower.push(empty);
            }
            Ok(())
        })();
        if let Err(e) = created {
            let _ = self.release_rootfs(id);
            return Err(e);
        }
        let options = crate::snapshot::overlay_mount_options(&lower, Some((&upper, &work)))
            .split(',')
            .map(String::from)
            .collect();
        Ok(RootfsMounts {
            dir,
            upper,
            work,
            lower,
            mounts: vec![RootfsMount {
                kind: "overlay".to_string(),
                source: "overlay".to_string(),
                options,
            }],
        })
    }

    /// Removes the lease and the directories of container `id`. Returns
    /// false when there was neither. The caller unmounts the rootfs first.
    pub fn release_rootfs(&self, id: &str) -> Result<bool> {
        validate_id(id)?;
        let leased = self.write_txn(|txn| self.remove_key(txn, LEASES, id))?;
        let dir = self.rootfs_dir(id);
        let existed = match fs::remove_dir_all(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(StoreError::io("remove", dir, e)),
        };
        Ok(leased || existed)
    }
}
