//! Bundles made by `hullctl bundle create`, removed with `hullctl bundle
//! rm` on drop, and containers run from them by a private `hull`.

use std::path::PathBuf;
use std::process::Command;

use hull_integration::{host, Output, Runtime};

use crate::fixture::Imaged;

/// A bundle directory below the daemon's temp dir, removed on drop with
/// `hullctl bundle rm`. When that fails, the drop unmounts the rootfs and
/// removes the directory itself, so that a failed test leaves no mount.
pub struct BundleDir<'a> {
    imaged: &'a Imaged,
    pub dir: PathBuf,
}

impl<'a> BundleDir<'a> {
    /// Returns the guard for `DAEMON_DIR/bundles/NAME` without creating it.
    pub fn new(imaged: &'a Imaged, name: &str) -> Self {
        let dir = imaged.dir.path().join("bundles").join(name);
        Self { imaged, dir }
    }

    /// Runs `hullctl bundle create EXTRA... IMAGE DIR COMMAND...` and
    /// panics unless it succeeds.
    pub fn create(imaged: &'a Imaged, name: &str, image: &str, extra: &[&str]) -> Self {
        Self::create_with_command(imaged, name, image, extra, &[])
    }

    pub fn create_with_command(
        imaged: &'a Imaged,
        name: &str,
        image: &str,
        extra: &[&str],
        command: &[&str],
    ) -> Self {
        let bundle = Self::new(imaged, name);
        let output = bundle.try_create(image, extra, command);
        assert!(
            output.success(),
            "hullctl bundle create failed: {output}\ndaemon log:\n{}",
            imaged.log()
        );
        bundle
    }

    /// Runs `hullctl bundle create` for this directory and returns its
    /// output.
    pub fn try_create(&self, image: &str, extra: &[&str], command: &[&str]) -> Output {
        let dir = self.dir.display().to_string();
        let args = [&["bundle", "create"], extra, &[image, &dir], command].concat();
        self.imaged.hullctl(&args)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Runs `hullctl bundle rm` and returns its output.
    pub fn remove(&self) -> Output {
        let dir = self.dir.display().to_string();
        self.imaged.hullctl(&["bundle", "rm", &dir])
    }

    /// Runs the bundle in the foreground with `hull` as container `id` and
    /// deletes the container afterwards.
    pub fn run(&self, hull: &Runtime, id: &str) -> Output {
        let dir = self.dir.display().to_string();
        let output = hull.exec(&["run", "--bundle", &dir, id]);
        let _ = hull.delete_force(id);
        host::remove_cgroups(id);
        output
    }
}

impl Drop for BundleDir<'_> {
    fn drop(&mut self) {
        if !self.dir.exists() {
            return;
        }
        if self.remove().success() {
            return;
        }
        if !host::mounts_mentioning(&self.rootfs()).is_empty() {
            let _ = Command::new("umount").arg("-l").arg(self.rootfs()).status();
        }
        if host::mounts_mentioning(&self.dir).is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
