//! Layers unpacked by `hull_images::unpack` and mounted by
//! `hull_images::snapshot`: overlay semantics of whiteouts, and the same
//! root filesystem as `umoci unpack` for the busybox and Debian fixtures.

mod merged;
mod versus_umoci;

use std::fs;
use std::path::{Path, PathBuf};

use hull_images::snapshot;
use tempfile::TempDir;

/// A temp dir for one test and the mounts made in it, all removed on drop
/// (mounts first), also when the test panics.
pub struct Scratch {
    mounts: Vec<PathBuf>,
    dir: TempDir,
}

impl Scratch {
    pub fn new(prefix: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("hull-{prefix}-"))
            .tempdir()
            .unwrap();
        Self {
            mounts: Vec::new(),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Creates the directory `name` (and its parents) in the scratch dir.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::create_dir_all(&path).unwrap();
        path
    }

    /// Mounts a writable overlay of `lowers` (top first) at `NAME/merged`,
    /// with `NAME/upper` and `NAME/work`.
    pub fn mount_writable(&mut self, lowers: &[PathBuf], name: &str) -> PathBuf {
        let upper = self.mkdir(&format!("{name}/upper"));
        let work = self.mkdir(&format!("{name}/work"));
        let target = self.mkdir(&format!("{name}/merged"));
        snapshot::mount_rootfs(lowers, &upper, &work, &target).unwrap_or_else(|e| panic!("{e}"));
        self.mounts.push(target.clone());
        target
    }

    /// Mounts a read-only view of `lowers` (top first) at `NAME`.
    pub fn mount_readonly(&mut self, lowers: &[PathBuf], name: &str) -> PathBuf {
        let target = self.mkdir(name);
        snapshot::mount_rootfs_readonly(lowers, &target).unwrap_or_else(|e| panic!("{e}"));
        self.mounts.push(target.clone());
        target
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for target in self.mounts.iter().rev() {
            if let Err(e) = snapshot::unmount(target) {
                eprintln!("{e}");
            }
        }
    }
}
