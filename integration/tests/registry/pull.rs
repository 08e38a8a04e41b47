//! Resolving and fetching manifests, indexes and blobs from docker-registry.

use futures_util::StreamExt;
use hull_images::registry::platform::{host_platform, select};
use hull_images::registry::{
    RegistryConfig, RegistryError, DOCKER_MANIFEST_V2, OCI_INDEX, OCI_MANIFEST,
};
use hull_integration::registry::skopeo;
use hull_integration::{require_root, require_tools};
use oci_spec::image::{Descriptor, ImageIndex};

use crate::http::CutProxy;
use crate::{block_on, client, client_with, fetch_all, manifest, reference, sha256, Pushed};

/// Returns the digest that `skopeo inspect` prints for `image`.
fn skopeo_digest(image: &str) -> String {
    let output = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    let json: serde_json::Value = serde_json::from_str(&output).unwrap();
    json["Digest"].as_str().unwrap().to_string()
}

#[test]
fn resolve_oci_manifest() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let pushed = Pushed::start(&[]);
    let (client, _dir) = client();
    let image = pushed.image();

    block_on(async {
        let resolved = client.resolve(&image).await.unwrap();
        let descriptor = &resolved.descriptor;
        assert_eq!(descriptor.media_type().to_string(), OCI_MANIFEST);
        assert_eq!(descriptor.digest().to_string(), sha256(&resolved.bytes));
        assert_eq!(descriptor.size(), resolved.bytes.len() as u64);
        assert_eq!(
            descriptor.digest().to_string(),
            skopeo_digest(&image.to_string())
        );

        let fetched = client.fetch_manifest(&image, descriptor).await.unwrap();
        assert_eq!(fetched, resolved.bytes);

        let pinned = image.pin(descriptor.digest().clone());
        let by_digest = client.resolve(&pinned).await.unwrap();
        assert_eq!(by_digest.bytes, resolved.bytes);
    });
}

#[test]
fn resolve_docker_schema2_manifest() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let pushed = Pushed::start(&["--format", "v2s2"]);
    let (client, _dir) = client();
    let image = pushed.image();

    block_on(async {
        let (descriptor, manifest) = manifest(&client, &image).await;
        assert_eq!(descriptor.media_type().to_string(), DOCKER_MANIFEST_V2);
        assert_eq!(
            descriptor.digest().to_string(),
            skopeo_digest(&image.to_string())
        );
        let layer = &manifest.layers()[0];
        assert_eq!(
            layer.media_type().to_string(),
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        let data = fetch_all(&client, &image, layer).await;
        assert_eq!(data.len() as u64, layer.size());
        assert_eq!(sha256(&data), layer.digest().to_string());
    });
}

#[test]
fn resolve_missing_tag_names_reference() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let pushed = Pushed::start(&[]);
    let (client, _dir) = client();
    let missing = reference(&format!("{}/test/busybox:nope", pushed.registry.host()));

    let error = block_on(client.resolve(&missing)).unwrap_err();
    assert!(matches!(error, RegistryError::NotFound { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&missing.to_string()), "{message}");
}

#[test]
fn fetch_blobs_with_digest_check() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let pushed = Pushed::start(&[]);
    let (client, _dir) = client();
    let image = pushed.image();

    block_on(async {
        let (_, manifest) = manifest(&client, &image).await;
        let config = fetch_all(&client, &image, manifest.config()).await;
        assert_eq!(sha256(&config), manifest.config().digest().to_string());
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));

        let layer = &manifest.layers()[0];
        let data = fetch_all(&client, &image, layer).await;
        assert_eq!(data.len() as u64, layer.size());
        assert_eq!(sha256(&data), layer.digest().to_string());

        let mut tail = Vec::new();
        let mut stream = client.fetch_blob(&image, layer, 100).await.unwrap();
        while let Some(chunk) = stream.next().await {
            tail.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(tail, data[100..]);

        let size = client.blob_exists(&image, layer.digest()).await.unwrap();
        assert_eq!(size, Some(layer.size()));
        let absent = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        assert_eq!(client.blob_exists(&image, &absent).await.unwrap(), None);
    });
}

#[test]
fn resolve_index_and_select_platform() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let pushed = Pushed::start(&[]);
    let (client, _dir) = client();
    let image = pushed.image();
    let index_ref = reference(&format!("{}/test/busybox:multi", pushed.registry.host()));

    block_on(async {
        let (descriptor, _) = manifest(&client, &image).await;
        let host = host_platform();
        let entry = |arch: &str, variant: Option<&str>, label: &str| {
            let mut platform = serde_json::json!({"architecture": arch, "os": "linux"});
            if let Some(variant) = variant {
                platform["variant"] = variant.into();
            }
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": descriptor.digest().to_string(),
                "size": descriptor.size(),
                "platform": platform,
                "annotations": {"entry": label},
            })
        };
        let other_arch = if host.architecture().to_string() == "s390x" {
            "ppc64le"
        } else {
            "s390x"
        };
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                entry(other_arch, None, "other"),
                entry(&host.architecture().to_string(), host.variant().as_deref(), "host"),
            ],
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        client
            .push_manifest(&index_ref, OCI_INDEX, &bytes)
            .await
            .unwrap();

        let resolved = client.resolve(&index_ref).await.unwrap();
        assert_eq!(resolved.descriptor.media_type().to_string(), OCI_INDEX);
        assert_eq!(resolved.bytes, bytes);
        let index: ImageIndex = serde_json::from_slice(&resolved.bytes).unwrap();
        let chosen: Descriptor = select(&index, &host).expect("an entry for the host");
        let label = chosen.annotations().as_ref().unwrap()["entry"].clone();
        assert_eq!(label, "host");
        let fetched = client.fetch_manifest(&index_ref, &chosen).await.unwrap();
        assert_eq!(sha256(&fetched), descriptor.digest().to_string());
    });
}

/// Fetches the busybox layer through a proxy that cuts the first blob
/// download after 1000 bytes; returns the data and the proxy's log.
fn fetch_through_cut(
    strip_range: bool,
    retries: u32,
) -> (Result<Vec<u8>, RegistryError>, Descriptor, CutProxy) {
    let pushed = Pushed::start(&[]);
    let proxy = CutProxy::start(pushed.registry.port(), Some(1000), strip_range);
    let config = RegistryConfig {
        retries,
        ..RegistryConfig::default()
    };
    let (client, _dir) = client_with(config, None);
    let image = reference(&format!("{}/test/busybox:v1", proxy.host()));

    let (result, layer) = block_on(async {
        let (_, manifest) = manifest(&client, &image).await;
        let layer = manifest.layers()[0].clone();
        let mut stream = client.fetch_blob(&image, &layer, 0).await.unwrap();
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(error) => return (Err(error), layer),
            }
        }
        (Ok(data), layer)
    });
    drop(pushed);
    (result, layer, proxy)
}

fn blob_gets(proxy: &CutProxy) -> Vec<crate::http::Request> {
    proxy
        .requests()
        .into_iter()
        .filter(|request| request.method == "GET" && request.target.contains("/blobs/sha256:"))
        .collect()
}

#[test]
fn fetch_blob_resumes_with_range() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let (result, layer, proxy) = fetch_through_cut(false, 3);
    let data = result.unwrap();
    assert_eq!(data.len() as u64, layer.size());
    assert_eq!(sha256(&data), layer.digest().to_string());

    let gets = blob_gets(&proxy);
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].header("range"), None);
    assert_eq!(gets[1].header("range"), Some("bytes=1000-"));
}

#[test]
fn fetch_blob_restarts_after_full_answer() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    // The proxy drops the Range header of the retry, so the registry sends
    // the whole blob with 200 and the client skips what it already has.
    let (result, layer, proxy) = fetch_through_cut(true, 3);
    let data = result.unwrap();
    assert_eq!(data.len() as u64, layer.size());
    assert_eq!(sha256(&data), layer.digest().to_string());
    assert_eq!(blob_gets(&proxy).len(), 2);
}

#[test]
fn fetch_blob_fails_without_retries() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let (result, _, proxy) = fetch_through_cut(false, 0);
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::Request { .. } | RegistryError::SizeMismatch { .. }
        ),
        "{error:?}"
    );
    assert_eq!(blob_gets(&proxy).len(), 1);
}
