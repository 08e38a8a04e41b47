//! hull-images' registry client against Debian's docker-registry 2.8 on a
//! loopback port, and against small loopback servers written here for
//! what docker-registry cannot show (bearer tokens, redirects to another
//! host, dropped connections).

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use hull_images::registry::{RegistryClient, RegistryConfig};
use hull_images::Reference;
use hull_integration::fixtures::busybox_rootfs;
use hull_integration::registry::{layout_from_rootfs, Registry};
use oci_spec::image::{Descriptor, ImageManifest};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

mod auth;
mod emulated;
mod http;
mod pull;
mod push;

/// Runs `future` on a multi-thread tokio runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Creates a client whose credentials file is `auth_file`, or else a
/// missing file in a fresh temp dir, so the machine's docker config is
/// never read.
fn client_with(
    mut config: RegistryConfig,
    auth_file: Option<PathBuf>,
) -> (RegistryClient, TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("hull-registry-test-")
        .tempdir()
        .unwrap();
    config.auth_file = Some(auth_file.unwrap_or_else(|| dir.path().join("config.json")));
    (RegistryClient::new(config).unwrap(), dir)
}

fn client() -> (RegistryClient, TempDir) {
    client_with(RegistryConfig::default(), None)
}

fn reference(text: &str) -> Reference {
    text.parse().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A registry holding the busybox image as `test/busybox:v1`, pushed by
/// skopeo with `extra` arguments (`--format v2s2`...).
struct Pushed {
    registry: Registry,
    _layout: TempDir,
}

impl Pushed {
    fn start(extra: &[&str]) -> Self {
        Self::start_in(Registry::start(), extra)
    }

    fn start_in(registry: Registry, extra: &[&str]) -> Self {
        let layout = tempfile::Builder::new()
            .prefix("hull-layout-")
            .tempdir()
            .unwrap();
        let dir = layout.path().join("image");
        layout_from_rootfs(busybox_rootfs(), &dir, "v1", &["--config.cmd=sh"]);
        registry.push_layout(&dir, "v1", "test/busybox:v1", extra);
        Self {
            registry,
            _layout: layout,
        }
    }

    fn image(&self) -> Reference {
        reference(&format!("{}/test/busybox:v1", self.registry.host()))
    }
}

/// Reads a whole blob through `fetch_blob`.
async fn fetch_all(client: &RegistryClient, image: &Reference, descriptor: &Descriptor) -> Vec<u8> {
    let mut stream = client.fetch_blob(image, descriptor, 0).await.unwrap();
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk.unwrap());
    }
    data
}

/// Resolves `image` and parses it as an image manifest.
async fn manifest(client: &RegistryClient, image: &Reference) -> (Descriptor, ImageManifest) {
    let resolved = client.resolve(image).await.unwrap();
    let manifest: ImageManifest = serde_json::from_slice(&resolved.bytes).unwrap();
    (resolved.descriptor, manifest)
}

/// Writes `bytes` to `dir/name` and returns the path.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}
