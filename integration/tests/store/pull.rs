//! Pulls from the test registry into an empty store.

use std::path::Path;

use hull_images::pull::{self, Action, PullError};
use hull_images::registry::platform;
use hull_images::store::{sha256_digest, StoreError};
use hull_integration::fixtures::busybox_rootfs;
use hull_integration::registry::{layout_from_rootfs, skopeo};
use hull_integration::{require_root, require_tools};
use oci_spec::image::{Descriptor, MediaType};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::fixture::{du_kib, names, pull_into, run, Env, TAG};

fn assert_busybox_unpacked(env: &Env, record: &hull_images::store::ImageRecord) {
    let layers = env.store.image_layers(record).unwrap();
    assert_eq!(layers.len(), 1);
    assert!(
        layers[0].join("bin/busybox").is_file(),
        "bin/busybox missing in {}",
        layers[0].display()
    );
    let report = env.store.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_oci_image() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let reference = env.push_busybox("library/busybox", &[]);

    let (record, progress) = pull_into(&env.client, &env.store, &reference).await;
    let record = record.unwrap();
    assert_eq!(record.name, reference.to_string());
    assert_eq!(record.target, record.manifest);
    assert_eq!(
        record.manifest.media_type(),
        &MediaType::ImageManifest,
        "{record:?}"
    );
    assert!(progress.iter().any(|p| p.action == Action::Resolving));
    assert!(progress.iter().any(|p| p.action == Action::Done));
    assert_busybox_unpacked(&env, &record);
    assert_eq!(env.store.list_images().unwrap(), vec![record.clone()]);

    let (again, progress) = pull_into(&env.client, &env.store, &reference).await;
    assert_eq!(again.unwrap().manifest, record.manifest);
    assert!(
        progress.iter().any(|p| p.action == Action::Exists),
        "{progress:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_docker_schema2() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let reference = env.push_busybox("docker/busybox", &["--format", "v2s2"]);
    let record = env.pull(&reference).await.unwrap();
    assert_eq!(
        record.manifest.media_type().to_string(),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_busybox_unpacked(&env, &record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_zstd_layers() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let reference = env.push_busybox(
        "zstd/busybox",
        &["--dest-compress-format", "zstd", "--format", "oci"],
    );
    let record = env.pull(&reference).await.unwrap();
    let manifest = env.store.image_manifest(&record).unwrap();
    assert_eq!(
        manifest.layers()[0].media_type(),
        &MediaType::ImageLayerZstd
    );
    assert_busybox_unpacked(&env, &record);
}

/// Adds to `layout` an index tagged `tag` listing the busybox manifest as
/// linux/amd64 and a copy whose config sets linux/arm64.
fn add_two_platform_index(layout: &Path, tag: &str) {
    let blobs = layout.join("blobs/sha256");
    let read_json = |digest: &str| -> Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(blobs.join(hex)).unwrap()).unwrap()
    };
    let write_blob = |media_type: MediaType, value: &Value| -> Descriptor {
        let bytes = serde_json::to_vec(value).unwrap();
        let digest = sha256_digest(&bytes);
        std::fs::write(blobs.join(digest.digest()), &bytes).unwrap();
        Descriptor::new(media_type, bytes.len() as u64, digest)
    };
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let amd64 = index["manifests"][0].clone();
    let mut manifest = read_json(amd64["digest"].as_str().unwrap());
    let mut config = read_json(manifest["config"]["digest"].as_str().unwrap());
    config["architecture"] = json!("arm64");
    let config_desc = write_blob(MediaType::ImageConfig, &config);
    manifest["config"] = serde_json::to_value(&config_desc).unwrap();
    let arm64 = write_blob(MediaType::ImageManifest, &manifest);

    let host = platform::host_platform();
    let mut amd64_entry = amd64.clone();
    amd64_entry.as_object_mut().unwrap().remove("annotations");
    amd64_entry["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let mut arm64_entry = serde_json::to_value(&arm64).unwrap();
    arm64_entry["platform"] = json!({"os": "linux", "architecture": "arm64"});
    assert_eq!(
        host.architecture().to_string(),
        "amd64",
        "the test assumes an amd64 host"
    );
    let image_index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [arm64_entry, amd64_entry],
    });
    let index_desc = write_blob(MediaType::ImageIndex, &image_index);
    let mut entry = serde_json::to_value(&index_desc).unwrap();
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    index["manifests"].as_array_mut().unwrap().push(entry);
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_multi_platform_index() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let layout = env.busybox_layout();
    add_two_platform_index(&layout, "multi");
    let dest = format!("docker://{}/multi/busybox:{TAG}", env.registry.host());
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &dest,
    ]);
    let reference = env.reference(&format!("multi/busybox:{TAG}"));

    let record = env.pull(&reference).await.unwrap();
    assert_eq!(record.target.media_type(), &MediaType::ImageIndex);
    assert_ne!(record.target, record.manifest);
    assert!(env.store.has_blob(record.target.digest()));
    let config = env.store.image_config(&record).unwrap();
    assert_eq!(config.architecture().to_string(), "amd64");
    assert_busybox_unpacked(&env, &record);

    let mut arm = platform::host_platform();
    arm.set_architecture(oci_spec::image::Arch::ARM64);
    let other = env.other_store("arm-root");
    let (tx, _rx) = mpsc::channel(4096);
    let arm_record = pull::pull(&env.client, &other, &reference, &arm, tx)
        .await
        .unwrap();
    let arm_config = other.image_config(&arm_record).unwrap();
    assert_eq!(arm_config.architecture().to_string(), "arm64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_rejects_corrupt_registry_blob() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let reference = env.push_busybox("corrupt/busybox", &[]);
    let manifest = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = layer.strip_prefix("sha256:").unwrap();
    let data = env
        .registry
        .storage()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0x5a;
    }
    std::fs::write(&data, bytes).unwrap();

    let error = env.pull(&reference).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            PullError::Store(StoreError::DigestMismatch { .. }) | PullError::Unpack { .. }
        ),
        "{message}"
    );
    assert!(message.contains(hex), "{message}");
    let layer_digest = layer.parse().unwrap();
    assert!(!env.store.has_blob(&layer_digest));
    assert!(env.store.list_images().unwrap().is_empty());
    assert!(env.store.list_snapshots().unwrap().is_empty());
    assert_eq!(
        names(&env.root().join("content/ingest")),
        Vec::<String>::new()
    );
    let snapshots = names(&env.root().join("snapshots"));
    assert!(snapshots.is_empty(), "{snapshots:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_store_once() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let reference = env.push_busybox("twice/busybox", &[]);
    let (first, second) = tokio::join!(env.pull(&reference), env.pull(&reference));
    let first = first.unwrap();
    let second = second.unwrap();
    assert_eq!(first.manifest, second.manifest);
    // manifest, config and one layer
    assert_eq!(names(&env.root().join("content/blobs/sha256")).len(), 3);
    assert_eq!(env.store.list_snapshots().unwrap().len(), 1);
    assert_eq!(names(&env.root().join("snapshots")).len(), 1);
    assert!(env.store.check().unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_pull_resumes() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let rootfs = env.dir.path().join("big-rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    run(
        "cp",
        &[
            "-a",
            &format!("{}/.", busybox_rootfs().display()),
            &rootfs.display().to_string(),
        ],
    );
    run(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={}", rootfs.join("random").display()),
            "bs=1M",
            "count=48",
            "status=none",
        ],
    );
    let layout = env.dir.path().join("big-layout");
    layout_from_rootfs(&rootfs, &layout, TAG, &[]);
    env.registry
        .push_layout(&layout, TAG, &format!("big/image:{TAG}"), &[]);
    let reference = env.reference(&format!("big/image:{TAG}"));

    let (tx, mut rx) = mpsc::channel(4096);
    let host = platform::host_platform();
    let mut pulling = Box::pin(pull::pull(&env.client, &env.store, &reference, &host, tx));
    loop {
        tokio::select! {
            result = &mut pulling => panic!("pull finished before it was interrupted: {result:?}"),
            Some(progress) = rx.recv() => {
                if progress.action == Action::Downloading
                    && progress.current > 4 << 20
                    && progress.current < progress.total
                {
                    break;
                }
            }
        }
    }
    drop(pulling);
    // The blocking writer notices the dropped download and releases the
    // ingest lock; the next pull waits for that lock.
    let record = env.pull(&reference).await.unwrap();
    let layers = env.store.image_layers(&record).unwrap();
    assert!(layers[0].join("random").is_file());
    assert_eq!(
        std::fs::metadata(layers[0].join("random")).unwrap().len(),
        48 << 20
    );
    let report = env.store.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        names(&env.root().join("content/ingest")),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_then_gc_frees_space() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let reference = env.push_busybox("gc/busybox", &[]);
    let record = env.pull(&reference).await.unwrap();
    let before = du_kib(&env.root());
    env.store.remove_image(&record.name).unwrap();
    let report = env.store.gc().unwrap();
    let after = du_kib(&env.root());
    assert_eq!(report.blobs_removed, 3, "{report:?}");
    assert_eq!(report.snapshots_removed, 1, "{report:?}");
    assert!(
        after + 1024 < before,
        "gc freed too little: {before} KiB before, {after} KiB after"
    );
    assert!(names(&env.root().join("content/blobs/sha256")).is_empty());
    assert!(names(&env.root().join("snapshots")).is_empty());
}
