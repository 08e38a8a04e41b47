//! Finding stored images by what users type: a reference, a reference with
//! a digest, an image id (config digest) or a unique prefix of one.

use oci_spec::image::{Digest, ImageConfiguration, ImageManifest};
use tonic::Status;

use super::status;
use crate::store::{ImageRecord, Store, StoreError};
use crate::Reference;

/// Shortest image id prefix accepted, as docker requires.
const MIN_ID_PREFIX: usize = 4;

/// A stored image with what the APIs report about it.
pub struct ImageInfo {
    pub record: ImageRecord,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The config digest, which docker and CRI call the image id.
    pub id: Digest,
    /// Bytes of the manifest, config and layer blobs.
    pub size: i64,
}

/// Reads the manifest and config of `record`.
pub fn describe(store: &Store, record: ImageRecord) -> Result<ImageInfo, Status> {
    let manifest = store
        .read_manifest(record.manifest.digest())
        .map_err(status::from_store)?;
    let config = store
        .read_config(manifest.config().digest())
        .map_err(status::from_store)?;
    let layers: u64 = manifest.layers().iter().map(|layer| layer.size()).sum();
    let size = record.manifest.size() + manifest.config().size() + layers;
    Ok(ImageInfo {
        id: manifest.config().digest().clone(),
        record,
        manifest,
        config,
        size: i64::try_from(size).unwrap_or(i64::MAX),
    })
}

/// Returns every stored image, described.
pub fn all(store: &Store) -> Result<Vec<ImageInfo>, Status> {
    let records = store.list_images().map_err(status::from_store)?;
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        match describe(store, record) {
            Ok(info) => out.push(info),
            // An image whose blobs are missing is left out of lists;
            // hullctl check reports it.
            Err(err) => tracing::warn!(error = %err.message(), "skipping unreadable image"),
        }
    }
    Ok(out)
}

/// Returns the text as a hex id prefix, when it has the form of one.
fn id_prefix(text: &str) -> Option<&str> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    let is_hex = hex.len() >= MIN_ID_PREFIX
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    is_hex.then_some(hex)
}

/// Returns the stored images that `text` names; an empty list when none.
///
/// An id or id prefix matches every name of that image. A reference
/// with a digest matches the names of that repository whose manifest or
/// index has the digest.
pub fn find(store: &Store, text: &str) -> Result<Vec<ImageInfo>, Status> {
    if let Some(prefix) = id_prefix(text) {
        let matches: Vec<ImageInfo> = all(store)?
            .into_iter()
            .filter(|info| {
                info.id.digest().starts_with(prefix)
                    || (prefix.len() == 64 && info.record.target.digest().digest() == prefix)
            })
            .collect();
        if !matches.is_empty() || text.starts_with("sha256:") {
            return Ok(matches);
        }
    }

    let reference: Reference = text.parse().map_err(status::from_reference)?;
    if let Some(digest) = reference.digest() {
        let name = reference.name();
        let matches = all(store)?
            .into_iter()
            .filter(|info| {
                let same_repository = info
                    .record
                    .name
                    .parse::<Reference>()
                    .is_ok_and(|stored| stored.name() == name);
                same_repository
                    && (info.record.target.digest() == digest
                        || info.record.manifest.digest() == digest)
            })
            .collect();
        return Ok(matches);
    }
    match store.get_image(&reference.to_string()) {
        Ok(record) => Ok(vec![describe(store, record)?]),
        Err(StoreError::ImageNotFound(_)) => Ok(Vec::new()),
        Err(err) => Err(status::from_store(err)),
    }
}

/// Returns the one image that `text` names: NOT_FOUND when none, and
/// FAILED_PRECONDITION when an id prefix matches several images.
pub fn find_one(store: &Store, text: &str) -> Result<ImageInfo, Status> {
    let mut matches = find(store, text)?;
    if matches.is_empty() {
        return Err(status::image_not_found(text));
    }
    let first_id = matches[0].id.clone();
    if matches.iter().any(|info| info.id != first_id) {
        return Err(Status::failed_precondition(format!(
            "image id prefix {text:?} matches several images: give more digits"
        )));
    }
    Ok(matches.swap_remove(0))
}
