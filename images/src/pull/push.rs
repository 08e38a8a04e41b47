//! Pushing a stored image: blobs first (skipped when the registry has
//! them, mounted from another repository when the store has recorded one), then
//! the config's manifest and the index, with their stored bytes so their
//! digests do not change.

use oci_spec::image::{Descriptor, Digest};
use tokio::sync::mpsc::Sender;

use super::{short_id, Action, Progress, PullError, Reporter};
use crate::registry::RegistryClient;
use crate::store::{is_index_media_type, ImageRecord, Store};
use crate::Reference;

/// Returns `reference`'s repository pinned to `digest`, with no tag, so
/// that a manifest pushed to it is stored by digest only.
fn by_digest(reference: &Reference, digest: &Digest) -> Result<Reference, PullError> {
    repository_at(reference.registry(), reference.repository(), digest)
}

fn repository_at(
    registry: &str,
    repository: &str,
    digest: &Digest,
) -> Result<Reference, PullError> {
    format!("{registry}/{repository}@{digest}").parse().map_err(
        |e: crate::reference::ReferenceError| PullError::InvalidManifest {
            what: "reference",
            digest: digest.clone(),
            reason: e.to_string(),
        },
    )
}

async fn push_blob(
    client: &RegistryClient,
    store: &Store,
    dest: &Reference,
    desc: &Descriptor,
    reporter: &Reporter,
) -> Result<(), PullError> {
    let id = short_id(desc.digest());
    let size = desc.size();
    if client.blob_exists(dest, desc.digest()).await?.is_some() {
        reporter.send(&id, Action::Exists, size, size).await;
        return Ok(());
    }
    for repository in store.blob_sources(desc.digest(), dest.registry())? {
        if repository == dest.repository() {
            continue;
        }
        let Ok(from) = repository_at(dest.registry(), &repository, desc.digest()) else {
            continue;
        };
        if client.mount_blob(dest, &from, desc).await? {
            reporter.send(&id, Action::Mounted, size, size).await;
            store.add_blob_source(desc.digest(), dest.registry(), dest.repository())?;
            return Ok(());
        }
    }
    if !store.has_blob(desc.digest()) {
        return Err(crate::store::StoreError::BlobNotFound(desc.digest().clone()).into());
    }
    reporter.send(&id, Action::Uploading, 0, size).await;
    client
        .push_blob(dest, desc, &store.blob_path(desc.digest()))
        .await?;
    store.add_blob_source(desc.digest(), dest.registry(), dest.repository())?;
    reporter.send(&id, Action::Done, size, size).await;
    Ok(())
}

/// Pushes the config and layers of manifest `desc`, then the manifest
/// itself to `dest`.
async fn push_manifest(
    client: &RegistryClient,
    store: &Store,
    dest: &Reference,
    desc: &Descriptor,
    reporter: &Reporter,
) -> Result<Digest, PullError> {
    let manifest = store.read_manifest(desc.digest())?;
    push_blob(client, store, dest, manifest.config(), reporter).await?;
    for layer in manifest.layers() {
        push_blob(client, store, dest, layer, reporter).await?;
    }
    let bytes = store.read_blob(desc.digest())?;
    Ok(client
        .push_manifest(dest, desc.media_type().as_ref(), &bytes)
        .await?)
}

/// Pushes `image` to `dest` and returns the digest of what `dest`'s tag
/// now names. An index is pushed whole when every manifest it lists is
/// stored, and otherwise only this host's manifest is pushed.
pub async fn push(
    client: &RegistryClient,
    store: &Store,
    image: &ImageRecord,
    dest: &Reference,
    progress: Sender<Progress>,
) -> Result<Digest, PullError> {
    let reporter = Reporter(progress);
    let target = store.exportable_target(image)?;
    let digest = if is_index_media_type(target.media_type().as_ref()) {
        let index = store.read_index(target.digest())?;
        for child in index.manifests() {
            let child_dest = by_digest(dest, child.digest())?;
            push_manifest(client, store, &child_dest, child, &reporter).await?;
        }
        let bytes = store.read_blob(target.digest())?;
        client
            .push_manifest(dest, target.media_type().as_ref(), &bytes)
            .await?
    } else {
        push_manifest(client, store, dest, &target, &reporter).await?
    };
    store.add_blob_source(&digest, dest.registry(), dest.repository())?;
    reporter.send(&dest.to_string(), Action::Done, 0, 0).await;
    tracing::info!(image = %image.name, destination = %dest, %digest, "pushed image");
    Ok(digest)
}
