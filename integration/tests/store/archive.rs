//! Export to and import from OCI layouts, OCI archives and docker
//! archives, checked with umoci and skopeo.

use hull_images::archive::{self, Format};
use hull_integration::registry::{skopeo, umoci};
use hull_integration::{require_root, require_tools};
use serde_json::Value;

use crate::fixture::{run, Env, TAG};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_oci_layout_read_by_umoci() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let reference = env.push_busybox("export/busybox", &[]);
    let record = env.pull(&reference).await.unwrap();

    let layout = env.dir.path().join("exported");
    archive::export_oci_layout(&env.store, &[(&record, "v1")], &layout).unwrap();
    let bundle = env.dir.path().join("bundle");
    umoci(&[
        "unpack",
        "--image",
        &format!("{}:v1", layout.display()),
        &bundle.display().to_string(),
    ]);
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    let inspect = skopeo(&["inspect", &format!("oci:{}:v1", layout.display())]);
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        inspect["Digest"].as_str().unwrap(),
        record.manifest.digest().to_string()
    );
    assert_eq!(archive::detect(&layout).unwrap(), Format::OciLayout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_archives_read_by_skopeo() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let reference = env.push_busybox("archives/busybox", &[]);
    let record = env.pull(&reference).await.unwrap();

    let oci = env.dir.path().join("busybox-oci.tar");
    archive::export_oci_archive(&env.store, &[(&record, "v2")], &oci).unwrap();
    assert_eq!(archive::detect(&oci).unwrap(), Format::OciArchive);
    let inspect = skopeo(&["inspect", &format!("oci-archive:{}:v2", oci.display())]);
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        inspect["Digest"].as_str().unwrap(),
        record.manifest.digest().to_string()
    );

    let docker = env.dir.path().join("busybox-docker.tar");
    archive::export_docker_archive(&env.store, &[(&record, "busybox:v3")], &docker).unwrap();
    assert_eq!(archive::detect(&docker).unwrap(), Format::DockerArchive);
    let inspect = skopeo(&["inspect", &format!("docker-archive:{}", docker.display())]);
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1, "{inspect}");
    let saved = run("tar", &["-xOf", docker.to_str().unwrap(), "manifest.json"]);
    let saved: Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved[0]["RepoTags"][0].as_str().unwrap(), "busybox:v3");
    let copied = env.dir.path().join("copied");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", docker.display()),
        &format!("oci:{}:copied", copied.display()),
    ]);
    let bundle = env.dir.path().join("bundle");
    umoci(&[
        "unpack",
        "--image",
        &format!("{}:copied", copied.display()),
        &bundle.display().to_string(),
    ]);
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_oci_archive_from_skopeo() {
    require_root!();
    require_tools!("skopeo", "umoci");
    let env = Env::start();
    let layout = env.busybox_layout();
    let file = env.dir.path().join("busybox-oci.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:{TAG}", layout.display()),
        &format!("oci-archive:{}:{TAG}", file.display()),
    ]);
    let name = "example.com/imported/busybox:1".parse().unwrap();
    let records = archive::import(&env.store, &file, Some(&name)).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, name.to_string());
    let layers = env.store.image_layers(&records[0]).unwrap();
    assert!(layers[0].join("bin/busybox").is_file());
    assert!(env.store.check().unwrap().is_clean());

    let unnamed = archive::import(&env.store, &file, None).unwrap_err();
    assert!(
        matches!(unnamed, archive::ArchiveError::NameRequired { .. }),
        "{unnamed}"
    );
    let scratch = crate::fixture::names(&env.root().join("tmp"));
    assert!(scratch.is_empty(), "{scratch:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_docker_archive_from_skopeo() {
    require_root!();
    require_tools!("skopeo", "umoci");
    let env = Env::start();
    let layout = env.busybox_layout();
    let file = env.dir.path().join("busybox-docker.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:{TAG}", layout.display()),
        &format!("docker-archive:{}:busybox:{TAG}", file.display()),
    ]);
    let records = archive::import(&env.store, &file, None).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "docker.io/library/busybox:latest");
    let config = env.store.image_config(&records[0]).unwrap();
    assert_eq!(
        config.config().as_ref().unwrap().cmd().as_ref().unwrap(),
        &vec!["sh".to_string()]
    );
    let layers = env.store.image_layers(&records[0]).unwrap();
    assert!(layers[0].join("bin/busybox").is_file());
    assert!(env.store.check().unwrap().is_clean());
}
