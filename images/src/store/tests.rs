use std::io::Write;

use oci_spec::image::{Descriptor, MediaType};

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn describe(bytes: &[u8]) -> Descriptor {
    Descriptor::new(
        MediaType::ImageLayer,
        bytes.len() as u64,
        sha256_digest(bytes),
    )
}

#[test]
fn writer_commit_verifies() {
    let (_dir, store) = store();
    let desc = describe(b"hello blob");
    let mut writer = store.writer(&desc).unwrap();
    writer.write_all(b"hello blob").unwrap();
    writer.commit().unwrap();
    assert!(store.has_blob(desc.digest()));
    assert_eq!(store.read_blob(desc.digest()).unwrap(), b"hello blob");
    assert!(matches!(
        store.writer(&desc),
        Err(StoreError::AlreadyExists(_))
    ));
}

#[test]
fn writer_mismatch_leaves_nothing() {
    let (dir, store) = store();
    let desc = describe(b"expected bytes");
    let mut writer = store.writer(&desc).unwrap();
    writer.write_all(b"tampered bytes").unwrap();
    let error = writer.commit().unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, StoreError::DigestMismatch { .. }),
        "{message}"
    );
    assert!(message.contains(&desc.digest().to_string()), "{message}");
    assert!(
        message.contains(&sha256_digest(b"tampered bytes").to_string()),
        "{message}"
    );
    assert!(!store.has_blob(desc.digest()));
    let ingest = dir.path().join("content/ingest");
    assert_eq!(std::fs::read_dir(&ingest).unwrap().count(), 0);

    let mut short = store.writer(&desc).unwrap();
    short.write_all(b"expected").unwrap();
    assert!(matches!(
        short.commit(),
        Err(StoreError::SizeMismatch { .. })
    ));
    assert!(!store.has_blob(desc.digest()));
    assert_eq!(std::fs::read_dir(&ingest).unwrap().count(), 0);
}

#[test]
fn writer_resumes_partial_data() {
    let (_dir, store) = store();
    let data = vec![7u8; 100_000];
    let desc = describe(&data);
    let mut first = store.writer(&desc).unwrap();
    first.write_all(&data[..40_000]).unwrap();
    drop(first);

    let mut second = store.writer(&desc).unwrap();
    assert_eq!(second.offset(), 40_000);
    second.write_all(&data[40_000..]).unwrap();
    second.commit().unwrap();
    assert_eq!(store.read_blob(desc.digest()).unwrap(), data);
}

#[test]
fn writer_resume_detects_bad_partial() {
    let (dir, store) = store();
    let data = vec![1u8; 1000];
    let desc = describe(&data);
    drop(store.writer(&desc).unwrap());
    let partial = dir
        .path()
        .join("content/ingest")
        .join(desc.digest().digest())
        .join("data");
    std::fs::write(&partial, vec![2u8; 500]).unwrap();
    let mut writer = store.writer(&desc).unwrap();
    assert_eq!(writer.offset(), 500);
    writer.write_all(&data[500..]).unwrap();
    assert!(matches!(
        writer.commit(),
        Err(StoreError::DigestMismatch { .. })
    ));
    assert!(!store.has_blob(desc.digest()));
}

#[test]
fn second_writer_waits_then_skips() {
    let (_dir, store) = store();
    let data = b"one writer at a time".to_vec();
    let desc = describe(&data);
    let mut first = store.writer(&desc).unwrap();
    first.write_all(&data[..5]).unwrap();

    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let waiter = {
        let store = store.clone();
        let desc = desc.clone();
        std::thread::spawn(move || {
            started_tx.send(()).unwrap();
            store.writer(&desc).map(|w| w.offset())
        })
    };
    started_rx.recv().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !waiter.is_finished(),
        "second writer did not wait for the lock"
    );
    first.write_all(&data[5..]).unwrap();
    first.commit().unwrap();
    let outcome = waiter.join().unwrap();
    assert!(
        matches!(outcome, Err(StoreError::AlreadyExists(_))),
        "{outcome:?}"
    );
}

#[test]
fn second_open_is_rejected() {
    let (dir, _store) = store();
    let error = Store::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::Locked { .. }), "{error}");
    assert!(error.to_string().contains(&std::process::id().to_string()));
}

/// Stores a one-layer image whose layer is `layer` and whose snapshot contains
/// one file, and records it as `name`.
fn add_image(store: &Store, name: &str, layer: &[u8]) -> ImageRecord {
    let layer_desc = store.put_blob(layer, MediaType::ImageLayer).unwrap();
    let diff_id = layer_desc.digest().clone();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    });
    let config_desc = store
        .put_blob(config.to_string().as_bytes(), MediaType::ImageConfig)
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    });
    let manifest_desc = store
        .put_blob(manifest.to_string().as_bytes(), MediaType::ImageManifest)
        .unwrap();
    let tmp = store.new_snapshot().unwrap();
    std::fs::write(tmp.fs_dir().join("file"), layer).unwrap();
    store
        .commit_snapshot(tmp, &diff_id, layer.len() as u64)
        .unwrap();
    let record = ImageRecord {
        name: name.to_string(),
        target: manifest_desc.clone(),
        manifest: manifest_desc,
        created: 0,
        labels: Default::default(),
    };
    store.put_image(&record).unwrap();
    record
}

#[test]
fn gc_removes_only_unreferenced() {
    let (dir, store) = store();
    let kept = add_image(&store, "example.com/kept:1", b"kept layer");
    let dropped = add_image(&store, "example.com/dropped:1", b"dropped layer");
    let stray = store.put_blob(b"stray", MediaType::ImageLayer).unwrap();
    drop(store.writer(&describe(b"partial")).unwrap());
    store.remove_image(&dropped.name).unwrap();

    let report = store.gc().unwrap();
    assert_eq!(report.blobs_removed, 4, "{report:?}");
    assert_eq!(report.snapshots_removed, 1, "{report:?}");
    assert_eq!(report.ingests_removed, 1, "{report:?}");
    assert!(report.bytes_freed > 0, "{report:?}");
    assert!(!store.has_blob(&stray.digest().clone()));
    assert!(!store.has_blob(dropped.manifest.digest()));
    assert!(store.has_blob(kept.manifest.digest()));
    assert_eq!(store.image_layers(&kept).unwrap().len(), 1);
    assert!(store.check().unwrap().is_clean());
    let snapshots = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(snapshots, 1);

    let again = store.gc().unwrap();
    assert_eq!(again, GcReport::default());
}

#[test]
fn gc_keeps_leased_layers() {
    let (_dir, store) = store();
    let image = add_image(&store, "example.com/leased:1", b"leased layer");
    let mounts = store.prepare_rootfs("c1", &image).unwrap();
    assert!(mounts.upper.is_dir());
    assert!(mounts.work.is_dir());
    assert_eq!(mounts.mounts[0].kind, "overlay");
    store.remove_image(&image.name).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.snapshots_removed, 0, "{report:?}");
    assert_eq!(report.blobs_removed, 3, "{report:?}");
    assert!(store.release_rootfs("c1").unwrap());
    assert!(!mounts.dir.exists());
    assert_eq!(store.gc().unwrap().snapshots_removed, 1);
}

#[test]
fn rootfs_id_is_validated() {
    let (_dir, store) = store();
    let image = add_image(&store, "example.com/ids:1", b"layer");
    for id in ["", "../x", "a/b", ".hidden", &"a".repeat(129)] {
        assert!(
            matches!(
                store.prepare_rootfs(id, &image),
                Err(StoreError::InvalidId(_))
            ),
            "{id:?} was accepted"
        );
    }
    store.prepare_rootfs("ok_1.2-3", &image).unwrap();
    assert!(matches!(
        store.prepare_rootfs("ok_1.2-3", &image),
        Err(StoreError::RootfsExists(_))
    ));
}

#[test]
fn check_finds_corrupt_blob() {
    let (_dir, store) = store();
    let image = add_image(&store, "example.com/corrupt:1", b"layer bytes");
    assert!(store.check().unwrap().is_clean());
    let manifest = store.image_manifest(&image).unwrap();
    let layer = manifest.layers()[0].digest().clone();
    let path = store.blob_path(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let report = store.check().unwrap();
    assert_eq!(report.corrupt_blobs.len(), 1, "{report:?}");
    assert_eq!(report.corrupt_blobs[0].expected.as_ref(), Some(&layer));
    assert_eq!(report.images.len(), 1, "{report:?}");
    assert_eq!(report.images[0].missing_blobs, vec![layer]);
}

#[test]
fn open_removes_unrecorded_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let tmp = store.new_snapshot().unwrap();
        std::mem::forget(tmp);
        std::fs::create_dir_all(dir.path().join("snapshots/42/fs")).unwrap();
    }
    let _store = Store::open(dir.path()).unwrap();
    let left = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(left, 0);
}
