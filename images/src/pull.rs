//! Pulling images from a registry into the store, and pushing stored
//! images back.
//!
//! A pull resolves the reference, picks this host's manifest from an index,
//! and stores the index, manifest and config. It then downloads up to
//! [`MAX_CONCURRENT_LAYERS`] layers at once, each one written to the store
//! and unpacked into its snapshot while it streams in. The image record is
//! written last, so a failed pull leaves no image behind.

mod layer;
mod push;

use std::sync::Arc;

use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, Platform,
};
use tokio::sync::mpsc::Sender;

use crate::registry::{platform, RegistryClient, RegistryError};
use crate::store::{is_index_media_type, ImageRecord, Store, StoreError};
use crate::unpack::UnpackError;
use crate::Reference;

pub(crate) use layer::{layer_compression, unpack_stored};
pub use push::push;

/// Layers downloaded at the same time by one pull.
pub const MAX_CONCURRENT_LAYERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("failed to unpack layer {layer}: {source}")]
    Unpack {
        layer: Digest,
        #[source]
        source: UnpackError,
    },
    #[error(
        "layer {layer} rejected: its uncompressed digest is {actual}, but the image config lists diff_id {expected}"
    )]
    DiffIdMismatch {
        layer: Digest,
        /// The diff_id in the image config.
        expected: String,
        /// The sha256 of the uncompressed layer.
        actual: String,
    },
    #[error("{reference} has no manifest for platform {platform}")]
    NoPlatform { reference: String, platform: String },
    #[error("invalid {what} {digest}: {reason}")]
    InvalidManifest {
        what: &'static str,
        digest: Digest,
        reason: String,
    },
    #[error("blob {digest} ended after {received} of {size} bytes")]
    Truncated {
        digest: Digest,
        received: u64,
        size: u64,
    },
    #[error("download of blob {0} was interrupted; the bytes received are kept for a resume")]
    Interrupted(Digest),
    #[error("pull task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The step a [`Progress`] message reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Resolving,
    Downloading,
    Unpacking,
    Uploading,
    /// The blob was mounted from another repository of the registry.
    Mounted,
    Done,
    /// The blob (and for a pull, its snapshot) was already there.
    Exists,
}

/// One progress message of a pull or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The first 12 hex digits of the blob's digest, or the reference
    /// while resolving.
    pub id: String,
    pub action: Action,
    /// Bytes done so far.
    pub current: u64,
    /// Bytes in all, 0 when unknown.
    pub total: u64,
}

/// Sends progress messages; a closed or full receiver is ignored, so a
/// slow reader never slows a pull.
#[derive(Clone)]
pub(crate) struct Reporter(Sender<Progress>);

impl Reporter {
    pub(crate) async fn send(&self, id: &str, action: Action, current: u64, total: u64) {
        let _ = self
            .0
            .send(Progress {
                id: id.to_string(),
                action,
                current,
                total,
            })
            .await;
    }

    /// Sends a message unless the channel is full: for the many
    /// Downloading updates.
    pub(crate) fn update(&self, id: &str, action: Action, current: u64, total: u64) {
        let _ = self.0.try_send(Progress {
            id: id.to_string(),
            action,
            current,
            total,
        });
    }
}

pub(crate) fn short_id(digest: &Digest) -> String {
    digest.digest().chars().take(12).collect()
}

fn invalid(what: &'static str, digest: &Digest, reason: impl ToString) -> PullError {
    PullError::InvalidManifest {
        what,
        digest: digest.clone(),
        reason: reason.to_string(),
    }
}

fn platform_name(platform: &Platform) -> String {
    let mut name = format!("{}/{}", platform.os(), platform.architecture());
    if let Some(variant) = platform.variant() {
        name.push('/');
        name.push_str(variant);
    }
    name
}

/// Stores `bytes` as the blob `desc`, on a blocking thread since the
/// writer may wait for another process's lock.
async fn store_bytes(store: &Store, desc: &Descriptor, bytes: Vec<u8>) -> Result<(), PullError> {
    let (store, desc) = (store.clone(), desc.clone());
    tokio::task::spawn_blocking(move || store.write_blob(&desc, &bytes)).await??;
    Ok(())
}

/// Returns the stored blob `desc`, fetching and storing it first when
/// missing. For configs and other small blobs.
async fn fetch_small_blob(
    client: &RegistryClient,
    store: &Store,
    reference: &Reference,
    desc: &Descriptor,
) -> Result<Vec<u8>, PullError> {
    if store.has_blob(desc.digest()) {
        return Ok(store.read_blob(desc.digest())?);
    }
    use futures_util::StreamExt;
    let mut stream = client.fetch_blob(reference, desc, 0).await?;
    let mut bytes = Vec::with_capacity(desc.size() as usize);
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    store_bytes(store, desc, bytes.clone()).await?;
    Ok(bytes)
}

/// Parses a manifest and its config and checks that they list as many
/// layers as diff_ids.
pub(crate) fn parse_image(
    manifest_desc: &Descriptor,
    manifest_bytes: &[u8],
    config_bytes: &[u8],
) -> Result<(ImageManifest, Vec<Digest>), PullError> {
    let manifest: ImageManifest = serde_json::from_slice(manifest_bytes)
        .map_err(|e| invalid("image manifest", manifest_desc.digest(), e))?;
    let config_digest = manifest.config().digest();
    let config: ImageConfiguration = serde_json::from_slice(config_bytes)
        .map_err(|e| invalid("image config", config_digest, e))?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|id| {
            Digest::try_from(id.as_str()).map_err(|e| invalid("image config", config_digest, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(invalid(
            "image config",
            config_digest,
            format!(
                "it lists {} diff_ids for the {} layers of manifest {}",
                diff_ids.len(),
                manifest.layers().len(),
                manifest_desc.digest()
            ),
        ));
    }
    Ok((manifest, diff_ids))
}

/// Pulls `reference` for `platform` into `store` and records it under
/// its normalised name (`registry/repository:tag` or `...@digest`).
pub async fn pull(
    client: &RegistryClient,
    store: &Store,
    reference: &Reference,
    platform: &Platform,
    progress: Sender<Progress>,
) -> Result<ImageRecord, PullError> {
    let reporter = Reporter(progress);
    let name = reference.to_string();
    reporter.send(&name, Action::Resolving, 0, 0).await;
    let resolved = client.resolve(reference).await?;
    let target = resolved.descriptor;
    let mut pins = store.pin([target.digest()]);

    let (manifest_desc, manifest_bytes) = if is_index_media_type(target.media_type().as_ref()) {
        let index: ImageIndex = serde_json::from_slice(&resolved.bytes)
            .map_err(|e| invalid("image index", target.digest(), e))?;
        let chosen = platform::select(&index, platform).ok_or_else(|| PullError::NoPlatform {
            reference: name.clone(),
            platform: platform_name(platform),
        })?;
        pins.add([chosen.digest()]);
        let bytes = if store.has_blob(chosen.digest()) {
            store.read_blob(chosen.digest())?
        } else {
            client.fetch_manifest(reference, &chosen).await?
        };
        store_bytes(store, &target, resolved.bytes).await?;
        (chosen, bytes)
    } else {
        (target.clone(), resolved.bytes)
    };
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| invalid("image manifest", manifest_desc.digest(), e))?;
    pins.add([manifest.config().digest()]);
    let config_bytes = fetch_small_blob(client, store, reference, manifest.config()).await?;
    let (manifest, diff_ids) = parse_image(&manifest_desc, &manifest_bytes, &config_bytes)?;
    store_bytes(store, &manifest_desc, manifest_bytes).await?;
    pins.add(manifest.layers().iter().map(|l| l.digest()));
    pins.add(&diff_ids);

    let semaphore = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_LAYERS));
    let mut tasks = tokio::task::JoinSet::new();
    for (layer, diff_id) in manifest.layers().iter().zip(&diff_ids) {
        let (client, store, reference) = (client.clone(), store.clone(), reference.clone());
        let (layer, diff_id, reporter) = (layer.clone(), diff_id.clone(), reporter.clone());
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let _permit = semaphore
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            layer::pull_layer(&client, &store, &reference, &layer, &diff_id, &reporter).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        // Dropping the set on an error aborts the other layers; their
        // partial data stays for the next pull to resume.
        result??;
    }

    let mut sources: Vec<&Digest> = vec![target.digest(), manifest_desc.digest()];
    sources.push(manifest.config().digest());
    sources.extend(manifest.layers().iter().map(|l| l.digest()));
    for digest in sources {
        store.add_blob_source(digest, reference.registry(), reference.repository())?;
    }
    let record = ImageRecord {
        name: name.clone(),
        target,
        manifest: manifest_desc,
        created: now_unix(),
        labels: Default::default(),
    };
    store.put_image(&record)?;
    drop(pins);
    reporter
        .send(
            &name,
            Action::Done,
            record.manifest.size(),
            record.manifest.size(),
        )
        .await;
    tracing::info!(image = %name, manifest = %record.manifest.digest(), "pulled image");
    Ok(record)
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
