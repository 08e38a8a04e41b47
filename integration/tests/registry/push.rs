//! Uploads to docker-registry: blobs and manifests read back by skopeo,
//! cross-repository mounts, chunked uploads, tags and referrers.

use hull_images::registry::{RegistryConfig, OCI_INDEX, OCI_MANIFEST};
use hull_integration::registry::skopeo;
use hull_integration::{require_root, require_tools};
use oci_spec::image::{Descriptor, MediaType};

use crate::http::CutProxy;
use crate::{
    block_on, client, client_with, fetch_all, manifest, reference, sha256, write_file, Pushed,
};

#[test]
fn push_blobs_and_manifest_skopeo_reads() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let pushed = Pushed::start(&[]);
    let (client, dir) = client();
    let image = pushed.image();
    let host = pushed.registry.host();
    let dest = reference(&format!("{host}/copy/busybox:v2"));

    let (resolved_digest, manifest_bytes) = block_on(async {
        let resolved = client.resolve(&image).await.unwrap();
        let (_, manifest) = manifest(&client, &image).await;
        let mut blobs: Vec<Descriptor> = vec![manifest.config().clone()];
        blobs.extend(manifest.layers().iter().cloned());
        for (i, blob) in blobs.iter().enumerate() {
            let data = fetch_all(&client, &image, blob).await;
            let path = write_file(dir.path(), &format!("blob-{i}"), &data);
            client.push_blob(&dest, blob, &path).await.unwrap();
            // A second push finds the blob and uploads nothing.
            client.push_blob(&dest, blob, &path).await.unwrap();
            let size = client.blob_exists(&dest, blob.digest()).await.unwrap();
            assert_eq!(size, Some(blob.size()));
        }
        let digest = client
            .push_manifest(&dest, OCI_MANIFEST, &resolved.bytes)
            .await
            .unwrap();
        assert_eq!(digest.to_string(), sha256(&resolved.bytes));
        let tags = client.tags(&dest).await.unwrap();
        assert_eq!(tags, ["v2"]);
        (digest, resolved.bytes)
    });

    let inspect = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{dest}")]);
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["Digest"], resolved_digest.to_string());
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dest}"),
    ]);
    assert_eq!(raw.as_bytes(), manifest_bytes);
}

#[test]
fn mount_blob_across_repositories() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let pushed = Pushed::start(&[]);
    let (client, _dir) = client();
    let image = pushed.image();
    let dest = reference(&format!("{}/mounted/busybox:v1", pushed.registry.host()));

    block_on(async {
        let (_, manifest) = manifest(&client, &image).await;
        let layer = &manifest.layers()[0];
        assert_eq!(
            client.blob_exists(&dest, layer.digest()).await.unwrap(),
            None
        );
        // true means the registry returned 201 Created for the mount.
        assert!(client.mount_blob(&dest, &image, layer).await.unwrap());
        let size = client.blob_exists(&dest, layer.digest()).await.unwrap();
        assert_eq!(size, Some(layer.size()));

        // The source repository lacks this blob, so the registry returns 202
        // and opens an upload session instead.
        let absent = Descriptor::new(
            MediaType::ImageLayerGzip,
            3,
            format!("sha256:{}", "1".repeat(64))
                .parse::<oci_spec::image::Digest>()
                .unwrap(),
        );
        assert!(!client.mount_blob(&dest, &image, &absent).await.unwrap());
    });
}

#[test]
fn chunked_upload_sends_patches() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let pushed = Pushed::start(&[]);
    let proxy = CutProxy::start(pushed.registry.port(), None, false);
    let chunk = 256 * 1024;
    let config = RegistryConfig {
        chunked_upload_threshold: 1024,
        upload_chunk_size: chunk,
        ..RegistryConfig::default()
    };
    let (client, dir) = client_with(config, None);
    let image = reference(&format!("{}/test/busybox:v1", proxy.host()));
    let dest = reference(&format!("{}/chunked/busybox:v1", proxy.host()));

    let layer = block_on(async {
        let (_, manifest) = manifest(&client, &image).await;
        let layer = manifest.layers()[0].clone();
        let data = fetch_all(&client, &image, &layer).await;
        let path = write_file(dir.path(), "layer", &data);
        client.push_blob(&dest, &layer, &path).await.unwrap();

        let copy = fetch_all(&client, &dest, &layer).await;
        assert_eq!(sha256(&copy), layer.digest().to_string());
        layer
    });

    let requests = proxy.requests();
    let patches: Vec<_> = requests
        .iter()
        .filter(|request| request.method == "PATCH")
        .collect();
    assert_eq!(patches.len() as u64, layer.size().div_ceil(chunk));
    assert_eq!(
        patches[0].header("content-range"),
        Some(format!("0-{}", chunk.min(layer.size()) - 1).as_str())
    );
    let put = requests
        .iter()
        .find(|request| request.method == "PUT" && request.target.contains("/blobs/uploads/"))
        .expect("a PUT closing the upload");
    assert_eq!(put.body.len(), 0);
    assert!(put.query("digest").contains(&layer.digest().to_string()));
}

#[test]
fn referrers_tag_schema_fallback() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let pushed = Pushed::start(&[]);
    let (client, dir) = client();
    let image = pushed.image();
    let host = pushed.registry.host();
    let artifact_type = "application/vnd.hull.test.note";

    block_on(async {
        let (subject, manifest) = manifest(&client, &image).await;

        let empty = b"{}";
        let empty_descriptor = Descriptor::new(
            MediaType::EmptyJSON,
            2,
            sha256(empty).parse::<oci_spec::image::Digest>().unwrap(),
        );
        let path = write_file(dir.path(), "empty", empty);
        client
            .push_blob(&image, &empty_descriptor, &path)
            .await
            .unwrap();
        let note = b"a note about the image";
        let note_descriptor = Descriptor::new(
            MediaType::Other("text/plain".into()),
            note.len() as u64,
            sha256(note).parse::<oci_spec::image::Digest>().unwrap(),
        );
        let path = write_file(dir.path(), "note", note);
        client
            .push_blob(&image, &note_descriptor, &path)
            .await
            .unwrap();

        let artifact = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty_descriptor,
            "layers": [note_descriptor],
            "subject": subject,
        });
        let artifact_bytes = serde_json::to_vec(&artifact).unwrap();
        let artifact_digest = sha256(&artifact_bytes);
        let by_digest = reference(&format!("{host}/test/busybox@{artifact_digest}"));
        client
            .push_manifest(&by_digest, OCI_MANIFEST, &artifact_bytes)
            .await
            .unwrap();

        let fallback = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": artifact_digest,
                "size": artifact_bytes.len(),
                "artifactType": artifact_type,
            }],
        });
        let tag = format!("sha256-{}", subject.digest().digest());
        let tagged = image.retag(&tag).unwrap();
        client
            .push_manifest(&tagged, OCI_INDEX, &serde_json::to_vec(&fallback).unwrap())
            .await
            .unwrap();

        let all = client
            .referrers(&image, subject.digest(), None)
            .await
            .unwrap();
        assert_eq!(all.manifests().len(), 1);
        assert_eq!(all.manifests()[0].digest().to_string(), artifact_digest);
        let notes = client
            .referrers(&image, subject.digest(), Some(artifact_type))
            .await
            .unwrap();
        assert_eq!(notes.manifests().len(), 1);
        let others = client
            .referrers(&image, subject.digest(), Some("application/vnd.other"))
            .await
            .unwrap();
        assert!(others.manifests().is_empty());
        let none = client
            .referrers(&image, manifest.config().digest(), None)
            .await
            .unwrap();
        assert!(none.manifests().is_empty());
    });
}
