//! OCI bundles in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::fixtures;
use crate::template::default_config;

/// The root filesystem a bundle uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rootfs {
    /// The shared busybox fixture, mounted read-only in place.
    Busybox,
    /// The shared Debian bookworm fixture, mounted read-only in place.
    Debian,
    /// A hard-link copy of the busybox fixture in `BUNDLE/rootfs`, for tests
    /// that add or remove entries. Files are shared with the fixture, so
    /// tests must replace files, never write into them.
    BusyboxCopy,
}

/// A bundle directory with a `config.json`, removed on drop.
///
/// The configuration is kept as JSON so that tests can set any field,
/// including invalid ones. [`Bundle::write`] stores it; the [`Runtime`]
/// helpers call it before every `create` and `run`.
///
/// [`Runtime`]: crate::Runtime
pub struct Bundle {
    dir: TempDir,
    /// The configuration written to `config.json`.
    pub config: Value,
    /// Text written in place of `config` when set, for malformed input.
    raw_config: Option<String>,
}

impl Bundle {
    /// Creates a bundle whose process runs `args` in `rootfs`.
    pub fn new(rootfs: Rootfs, args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("hull-bundle-")
            .tempdir()
            .expect("failed to create a bundle directory");
        let root_path = match rootfs {
            Rootfs::Busybox => fixtures::busybox_rootfs().to_path_buf(),
            Rootfs::Debian => fixtures::debian_rootfs().to_path_buf(),
            Rootfs::BusyboxCopy => {
                let copy = dir.path().join("rootfs");
                let status = Command::new("cp")
                    .arg("-al")
                    .arg(fixtures::busybox_rootfs())
                    .arg(&copy)
                    .status()
                    .expect("failed to run cp");
                assert!(status.success(), "cp -al of the busybox fixture failed");
                copy
            }
        };
        let readonly = rootfs != Rootfs::BusyboxCopy;
        let config = default_config(&root_path.to_string_lossy(), readonly, args);
        Bundle {
            dir,
            config,
            raw_config: None,
        }
    }

    /// Creates a bundle on the shared busybox fixture.
    pub fn busybox(args: &[&str]) -> Bundle {
        Bundle::new(Rootfs::Busybox, args)
    }

    /// Creates a bundle whose process is `sh -c SCRIPT` on the busybox fixture.
    pub fn busybox_sh(script: &str) -> Bundle {
        Bundle::new(Rootfs::Busybox, &["sh", "-c", script])
    }

    /// Returns the bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the root filesystem path as written in `root.path`.
    pub fn rootfs(&self) -> PathBuf {
        let root = self.config["root"]["path"].as_str().unwrap_or("rootfs");
        self.path().join(root)
    }

    /// Sets `process.args`.
    pub fn set_args(&mut self, args: &[&str]) -> &mut Bundle {
        self.config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        self
    }

    /// Appends an entry to `mounts`.
    pub fn add_mount(&mut self, mount: Value) -> &mut Bundle {
        self.config["mounts"]
            .as_array_mut()
            .expect("mounts is not an array")
            .push(mount);
        self
    }

    /// Removes the namespace of `kind` from `linux.namespaces`.
    pub fn remove_namespace(&mut self, kind: &str) -> &mut Bundle {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces is not an array")
            .retain(|ns| ns["type"] != kind);
        self
    }

    /// Sets the path of the namespace of `kind`, adding it if missing.
    pub fn join_namespace(&mut self, kind: &str, path: &Path) -> &mut Bundle {
        self.remove_namespace(kind);
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces is not an array")
            .push(serde_json::json!({ "type": kind, "path": path }));
        self
    }

    /// Makes [`Bundle::write`] store `text` as it is instead of `config`.
    pub fn set_raw_config(&mut self, text: &str) -> &mut Bundle {
        self.raw_config = Some(text.to_owned());
        self
    }

    /// Writes the configuration to `BUNDLE/config.json`.
    pub fn write(&self) {
        let text = match &self.raw_config {
            Some(text) => text.clone(),
            None => serde_json::to_string_pretty(&self.config).expect("config is not serializable"),
        };
        let path = self.path().join("config.json");
        fs::write(&path, text)
            .unwrap_or_else(|e| panic!("failed to write {}: {e}", path.display()));
    }
}
