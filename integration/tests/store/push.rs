//! Pushes of stored images, read back by skopeo and podman.

use hull_images::pull::{self, Action};
use hull_integration::registry::skopeo;
use hull_integration::{require_root, require_tools};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::fixture::{collect, run, Env, TAG};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_mounts_and_is_readable() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci", "podman");
    let env = Env::start();
    let source = env.push_busybox("from/busybox", &[]);
    let record = env.pull(&source).await.unwrap();

    let dest = env.reference(&format!("to/busybox:{TAG}"));
    let (tx, rx) = mpsc::channel(4096);
    let collector = tokio::spawn(collect(rx));
    let digest = pull::push(&env.client, &env.store, &record, &dest, tx)
        .await
        .unwrap();
    let progress = collector.await.unwrap();
    assert_eq!(&digest, record.manifest.digest());
    let mounted = progress
        .iter()
        .filter(|p| p.action == Action::Mounted)
        .count();
    assert_eq!(
        mounted, 2,
        "config and layer were not mounted: {progress:?}"
    );

    let inspect = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{dest}")]);
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"].as_str().unwrap(), digest.to_string());
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);

    let podman_root = env.dir.path().join("podman-root");
    let podman_run = env.dir.path().join("podman-run");
    let podman = |args: &[&str]| {
        let mut all = vec![
            "--root",
            podman_root.to_str().unwrap(),
            "--runroot",
            podman_run.to_str().unwrap(),
            "--storage-driver",
            "vfs",
        ];
        all.extend_from_slice(args);
        run("podman", &all)
    };
    podman(&["pull", "--tls-verify=false", &dest.to_string()]);
    let images = podman(&["images", "--format", "{{.Digest}}"]);
    assert!(images.contains(&digest.to_string()), "{images}");
    podman(&["rmi", "--all", "--force"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_uncompressed_then_pull() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let layout = env.busybox_layout();
    let archive = env.dir.path().join("busybox-docker.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:{TAG}", layout.display()),
        &format!("docker-archive:{}:busybox:{TAG}", archive.display()),
    ]);
    let imported = hull_images::archive::import(&env.store, &archive, None).unwrap();
    let dest = env.reference(&format!("plain/busybox:{TAG}"));
    let (tx, _rx) = mpsc::channel(4096);
    pull::push(&env.client, &env.store, &imported[0], &dest, tx)
        .await
        .unwrap();

    let other = env.other_store("fresh-root");
    let (record, _) = crate::fixture::pull_into(&env.client, &other, &dest).await;
    let record = record.unwrap();
    let manifest = other.image_manifest(&record).unwrap();
    assert_eq!(
        manifest.layers()[0].media_type().to_string(),
        "application/vnd.docker.image.rootfs.diff.tar"
    );
    let layers = other.image_layers(&record).unwrap();
    assert!(layers[0].join("bin/busybox").is_file());
    assert!(other.check().unwrap().is_clean());
}
