//! Resolving a reference on its registry without pulling it.

use hull_proto::hull::images::v1 as pb;
use oci_spec::image::{ImageIndex, ImageManifest, Platform};
use tonic::Status;

use super::{convert, status};
use crate::registry::{platform, RegistryClient};
use crate::store::is_index_media_type;
use crate::Reference;

/// Returns what `reference` resolves to, the manifest for `want` when it
/// is an index, and that manifest's config.
pub async fn inspect(
    client: &RegistryClient,
    reference: &Reference,
    want: &Platform,
) -> Result<pb::InspectRemoteResponse, Status> {
    let resolved = client
        .resolve(reference)
        .await
        .map_err(status::from_registry)?;
    let mut response = pb::InspectRemoteResponse {
        descriptor: Some(convert::descriptor(&resolved.descriptor)),
        raw: resolved.bytes.clone(),
        ..Default::default()
    };

    let (manifest_descriptor, manifest_bytes) =
        if is_index_media_type(resolved.descriptor.media_type().as_ref()) {
            let index: ImageIndex = serde_json::from_slice(&resolved.bytes).map_err(|err| {
                Status::data_loss(format!("invalid index from {reference}: {err}"))
            })?;
            response.manifests = index.manifests().iter().map(convert::descriptor).collect();
            let Some(selected) = platform::select(&index, want) else {
                // An index without this platform still has a descriptor and
                // its manifests list.
                return Ok(response);
            };
            let bytes = client
                .fetch_manifest(reference, &selected)
                .await
                .map_err(status::from_registry)?;
            (selected, bytes)
        } else {
            (resolved.descriptor.clone(), resolved.bytes)
        };

    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|err| Status::data_loss(format!("invalid manifest from {reference}: {err}")))?;
    let config = fetch_config(client, reference, &manifest).await?;
    response.manifest = Some(convert::descriptor(&manifest_descriptor));
    response.manifest_raw = manifest_bytes;
    response.config = config;
    Ok(response)
}

async fn fetch_config(
    client: &RegistryClient,
    reference: &Reference,
    manifest: &ImageManifest,
) -> Result<Vec<u8>, Status> {
    use futures_util::StreamExt;

    let mut stream = client
        .fetch_blob(reference, manifest.config(), 0)
        .await
        .map_err(status::from_registry)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(status::from_registry)?);
    }
    let actual = crate::store::sha256_digest(&bytes);
    if &actual != manifest.config().digest() {
        return Err(Status::data_loss(format!(
            "config of {reference} hashes to {actual}, expected {}",
            manifest.config().digest()
        )));
    }
    Ok(bytes)
}
