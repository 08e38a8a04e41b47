//! A registry, an empty store and a registry client per test, and the
//! busybox image as an OCI layout.

use std::path::{Path, PathBuf};
use std::process::Command;

use hull_images::pull::{self, Progress, PullError};
use hull_images::registry::{platform, RegistryClient, RegistryConfig};
use hull_images::store::{ImageRecord, Store};
use hull_images::Reference;
use hull_integration::fixtures::busybox_rootfs;
use hull_integration::registry::{layout_from_rootfs, Registry};
use tempfile::TempDir;
use tokio::sync::mpsc;

/// Tag of the busybox image in the layouts this fixture makes.
pub const TAG: &str = "latest";

pub struct Env {
    pub registry: Registry,
    pub dir: TempDir,
    pub store: Store,
    pub client: RegistryClient,
}

impl Env {
    pub fn start() -> Self {
        let registry = Registry::start();
        let dir = tempfile::Builder::new()
            .prefix("hull-store-test-")
            .tempdir()
            .unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let client = RegistryClient::new(RegistryConfig {
            auth_file: Some(dir.path().join("auth.json")),
            ..RegistryConfig::default()
        })
        .unwrap();
        Self {
            registry,
            dir,
            store,
            client,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Returns an OCI layout holding busybox as `TAG`, made on first use.
    pub fn busybox_layout(&self) -> PathBuf {
        let layout = self.dir.path().join("busybox-layout");
        if !layout.join("index.json").exists() {
            layout_from_rootfs(busybox_rootfs(), &layout, TAG, &["--config.cmd=sh"]);
        }
        layout
    }

    pub fn reference(&self, name: &str) -> Reference {
        format!("{}/{name}", self.registry.host()).parse().unwrap()
    }

    /// Pushes busybox to `name:TAG` with `skopeo copy EXTRA`.
    pub fn push_busybox(&self, name: &str, extra: &[&str]) -> Reference {
        let layout = self.busybox_layout();
        self.registry
            .push_layout(&layout, TAG, &format!("{name}:{TAG}"), extra);
        self.reference(&format!("{name}:{TAG}"))
    }

    /// Opens a second store in this test's directory.
    pub fn other_store(&self, name: &str) -> Store {
        Store::open(&self.dir.path().join(name)).unwrap()
    }

    pub async fn pull(&self, reference: &Reference) -> Result<ImageRecord, PullError> {
        pull_into(&self.client, &self.store, reference).await.0
    }
}

/// Pulls `reference` for this host and returns the result with every
/// progress message sent.
pub async fn pull_into(
    client: &RegistryClient,
    store: &Store,
    reference: &Reference,
) -> (Result<ImageRecord, PullError>, Vec<Progress>) {
    let (tx, rx) = mpsc::channel(4096);
    let collector = tokio::spawn(collect(rx));
    let result = pull::pull(client, store, reference, &platform::host_platform(), tx).await;
    (result, collector.await.unwrap())
}

pub async fn collect(mut rx: mpsc::Receiver<Progress>) -> Vec<Progress> {
    let mut all = Vec::new();
    while let Some(message) = rx.recv().await {
        all.push(message);
    }
    all
}

/// Returns the names in `dir`, sorted; empty when it does not exist.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Returns the disk usage of `path` in KiB, from `du -sk`.
pub fn du_kib(path: &Path) -> u64 {
    let output = Command::new("du").arg("-sk").arg(path).output().unwrap();
    assert!(output.status.success(), "du {} failed", path.display());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs `program args` and panics with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
