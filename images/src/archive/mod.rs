//! Import and export of images as OCI layouts (a directory with
//! `oci-layout`, `index.json` and `blobs/sha256`), OCI archives (a tar of
//! a layout) and `docker save` archives (`manifest.json`, configs and
//! uncompressed layer tars).
//!
//! Imported blobs are verified against their digests like pulled ones,
//! and their layers are unpacked into snapshots by the code pulls use.

mod docker;
mod oci;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest, Platform};

use crate::pull::{self, PullError};
use crate::reference::ReferenceError;
use crate::registry::platform;
use crate::store::{is_index_media_type, ImageRecord, Store, StoreError};
use crate::Reference;

pub use docker::export_docker_archive;
pub use oci::{export_oci_archive, export_oci_layout};

/// The annotation that names an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid archive {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("image {ref_name:?} in {path} has no full name: give it one (hullctl load --name REFERENCE)")]
    NameRequired { path: PathBuf, ref_name: String },
    #[error("{path} contains no image to import")]
    Empty { path: PathBuf },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pull(#[from] PullError),
}

pub(crate) fn io_error(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io { op, path, source }
}

/// Checks that the directory that will hold the archive `file` exists, so
/// that the error names the path the caller gave rather than a temporary
/// file beside it.
pub(crate) fn check_output_dir(file: &Path) -> Result<(), ArchiveError> {
    let parent = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if parent.is_dir() {
        return Ok(());
    }
    Err(invalid(
        file,
        format!(
            "directory {} does not exist: create it or choose another output path",
            parent.display()
        ),
    ))
}

pub(crate) fn invalid(path: &Path, reason: impl ToString) -> ArchiveError {
    ArchiveError::Invalid {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The kinds of archive hull reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OciLayout,
    OciArchive,
    DockerArchive,
}

/// Tells the format of `source` from its contents: a directory is an OCI
/// layout, and a tar holding `oci-layout` an OCI archive, one holding
/// `manifest.json` a docker archive.
pub fn detect(source: &Path) -> Result<Format, ArchiveError> {
    if source.is_dir() {
        return Ok(Format::OciLayout);
    }
    let file = File::open(source).map_err(io_error("open", source))?;
    let mut archive = tar::Archive::new(file);
    // The tar reader's own messages quote raw header bytes, so a file that
    // is no tar at all gets one plain error instead.
    let not_a_tar = |_| {
        invalid(
            source,
            "not a tar archive: load takes an OCI archive, a docker-archive (docker save) or an OCI layout directory",
        )
    };
    for entry in archive.entries().map_err(not_a_tar)? {
        let entry = entry.map_err(not_a_tar)?;
        let path = entry.path().map_err(not_a_tar)?;
        let name = path.to_string_lossy();
        match name.trim_start_matches("./") {
            "oci-layout" => return Ok(Format::OciArchive),
            "manifest.json" => return Ok(Format::DockerArchive),
            _ => {}
        }
    }
    Err(invalid(
        source,
        "neither an OCI layout directory nor a tar holding oci-layout or manifest.json",
    ))
}

/// Imports every image in `source` (any [`Format`]) into `store` and
/// records it. `name` names the image when `source` contains one, or is the
/// repository for images that a layout names by tag only.
///
/// The call blocks: async callers run it on a blocking thread.
pub fn import(
    store: &Store,
    source: &Path,
    name: Option<&Reference>,
) -> Result<Vec<ImageRecord>, ArchiveError> {
    let images = match detect(source)? {
        Format::OciLayout => oci::import_layout(store, source, source, name)?,
        Format::OciArchive => {
            let scratch = store.scratch_dir("import")?;
            extract(source, scratch.path())?;
            oci::import_layout(store, scratch.path(), source, name)?
        }
        Format::DockerArchive => {
            let scratch = store.scratch_dir("import")?;
            extract(source, scratch.path())?;
            docker::import_docker(store, scratch.path(), source, name)?
        }
    };
    if images.is_empty() {
        return Err(ArchiveError::Empty {
            path: source.to_path_buf(),
        });
    }
    for image in &images {
        tracing::info!(image = %image.name, source = %source.display(), "imported image");
    }
    Ok(images)
}

/// Unpacks the tar `source` into `dest`; entries that would land outside
/// `dest` are rejected by the tar crate.
fn extract(source: &Path, dest: &Path) -> Result<(), ArchiveError> {
    let file = File::open(source).map_err(io_error("open", source))?;
    let mut archive = tar::Archive::new(file);
    archive.set_preserve_permissions(false);
    archive.unpack(dest).map_err(io_error("extract", source))
}

/// Returns the name to record an image under: `ref_name` when it is a
/// full reference, else `name`, retagged with `ref_name` when it is a tag
/// and the archive holds more than one image.
pub(crate) fn record_name(
    path: &Path,
    ref_name: Option<&str>,
    name: Option<&Reference>,
    single: bool,
) -> Result<Reference, ArchiveError> {
    if let (Some(name), true) = (name, single) {
        return Ok(name.clone());
    }
    match (ref_name, name) {
        (Some(ref_name), _) if ref_name.contains('/') || ref_name.contains('@') => {
            Ok(ref_name.parse()?)
        }
        (Some(tag), Some(name)) => Ok(name.retag(tag)?),
        (Some(ref_name), None) if ref_name.contains(':') => Ok(ref_name.parse()?),
        (None, Some(name)) => Ok(name.clone()),
        (ref_name, None) => Err(ArchiveError::NameRequired {
            path: path.to_path_buf(),
            ref_name: ref_name.unwrap_or_default().to_string(),
        }),
    }
}

/// Picks the manifest for this host from a stored target, which is a
/// manifest or an index.
pub(crate) fn host_manifest(
    store: &Store,
    target: &Descriptor,
) -> Result<Descriptor, ArchiveError> {
    select_manifest(store, target, &platform::host_platform())
}

fn select_manifest(
    store: &Store,
    target: &Descriptor,
    want: &Platform,
) -> Result<Descriptor, ArchiveError> {
    if !is_index_media_type(target.media_type().as_ref()) {
        return Ok(target.clone());
    }
    let index = store.read_index(target.digest())?;
    platform::select(&index, want).ok_or_else(|| {
        PullError::NoPlatform {
            reference: target.digest().to_string(),
            platform: format!("{}/{}", want.os(), want.architecture()),
        }
        .into()
    })
}

/// Unpacks every layer of the stored manifest `manifest` that has no
/// snapshot yet.
pub(crate) fn unpack_layers(store: &Store, manifest: &Descriptor) -> Result<(), ArchiveError> {
    let parsed = store.read_manifest(manifest.digest())?;
    let config = store.read_blob(parsed.config().digest())?;
    let manifest_bytes = store.read_blob(manifest.digest())?;
    let (parsed, diff_ids) = pull::parse_image(manifest, &manifest_bytes, &config)?;
    for (layer, diff_id) in parsed.layers().iter().zip(&diff_ids) {
        if store.snapshot_dir(diff_id).is_none() {
            pull::unpack_stored(store, layer, diff_id)?;
        }
    }
    Ok(())
}

/// Returns the sha256 digest and size of the file at `path`.
pub(crate) fn hash_file(path: &Path) -> Result<(Digest, u64), ArchiveError> {
    use sha2::Digest as _;
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_error("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hex::encode(hasher.finalize());
    let digest = Digest::try_from(format!("sha256:{hex}")).expect("sha256 hex is a valid digest");
    Ok((digest, size))
}
