//! OCI image layouts and OCI archives (a tar of a layout).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest};
use serde_json::{json, Value};

use super::{
    host_manifest, invalid, io_error, record_name, unpack_layers, ArchiveError, REF_NAME_ANNOTATION,
};
use crate::pull::now_unix;
use crate::store::{is_index_media_type, ImageRecord, PinGuard, Store};
use crate::Reference;

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_VERSION: &str = "1.0.0";
const INDEX_FILE: &str = "index.json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn blob_file(dir: &Path, digest: &Digest) -> std::path::PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().to_string())
        .join(digest.digest())
}

/// Copies `desc` from the layout at `dir` into the store, verified, and
/// everything it refers to that the layout holds: an index's manifests,
/// a manifest's config and layers.
fn import_tree(
    store: &Store,
    dir: &Path,
    desc: &Descriptor,
    pins: &mut PinGuard,
) -> Result<(), ArchiveError> {
    pins.add([desc.digest()]);
    store.copy_blob_from(desc, &blob_file(dir, desc.digest()))?;
    let bytes = store.read_blob(desc.digest())?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(dir, format!("manifest {}: {e}", desc.digest())))?;
    if is_index_media_type(desc.media_type().as_ref()) || value.get("manifests").is_some() {
        let index: ImageIndex = serde_json::from_value(value)
            .map_err(|e| invalid(dir, format!("index {}: {e}", desc.digest())))?;
        for child in index.manifests() {
            if blob_file(dir, child.digest()).is_file() {
                import_tree(store, dir, child, pins)?;
            }
        }
    } else if value.get("layers").is_some() {
        let manifest: ImageManifest = serde_json::from_value(value)
            .map_err(|e| invalid(dir, format!("manifest {}: {e}", desc.digest())))?;
        for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
            pins.add([blob.digest()]);
            store.copy_blob_from(blob, &blob_file(dir, blob.digest()))?;
        }
    }
    Ok(())
}

/// Imports the images that the layout at `dir` lists in its `index.json`.
/// `source` is the path the caller named, for messages.
pub(super) fn import_layout(
    store: &Store,
    dir: &Path,
    source: &Path,
    name: Option<&Reference>,
) -> Result<Vec<ImageRecord>, ArchiveError> {
    if !dir.join(LAYOUT_FILE).is_file() {
        return Err(invalid(
            source,
            "no oci-layout file: not an OCI image layout",
        ));
    }
    let index_path = dir.join(INDEX_FILE);
    let bytes = fs::read(&index_path).map_err(io_error("read", &index_path))?;
    let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| invalid(&index_path, e))?;
    let single = index.manifests().len() == 1;
    let mut records = Vec::new();
    for entry in index.manifests() {
        let ref_name = entry
            .annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME_ANNOTATION))
            .map(String::as_str);
        if ref_name.is_none() && name.is_none() && !single {
            continue;
        }
        let image_name = record_name(source, ref_name, name, single)?;
        let mut pins = store.pin([]);
        import_tree(store, dir, entry, &mut pins)?;
        let target = Descriptor::new(
            entry.media_type().clone(),
            entry.size(),
            entry.digest().clone(),
        );
        let manifest = host_manifest(store, &target)?;
        unpack_layers(store, &manifest)?;
        let record = ImageRecord {
            name: image_name.to_string(),
            target,
            manifest,
            created: now_unix(),
            labels: Default::default(),
        };
        store.put_image(&record)?;
        records.push(record);
    }
    Ok(records)
}

/// The `index.json` entries and blobs of the images to export.
struct LayoutPlan {
    entries: Vec<Value>,
    blobs: Vec<Digest>,
}

fn plan(store: &Store, images: &[(&ImageRecord, &str)]) -> Result<LayoutPlan, ArchiveError> {
    let mut entries = Vec::new();
    let mut blobs = Vec::new();
    for (image, ref_name) in images {
        let target = store.exportable_target(image)?;
        for digest in store.blobs_of(&target)? {
            if !blobs.contains(&digest) {
                blobs.push(digest);
            }
        }
        let mut entry = serde_json::to_value(&target).expect("a descriptor serialises");
        entry["annotations"] = json!({ REF_NAME_ANNOTATION: ref_name });
        entries.push(entry);
    }
    Ok(LayoutPlan { entries, blobs })
}

fn index_json(entries: Vec<Value>) -> Vec<u8> {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    });
    serde_json::to_vec_pretty(&index).expect("an index serialises")
}

fn layout_json() -> Vec<u8> {
    serde_json::to_vec(&json!({ "imageLayoutVersion": LAYOUT_VERSION })).expect("serialises")
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(io_error("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_error("rename", &tmp))
}

/// Writes `images` into the OCI layout at `dir`, each named by its
/// `org.opencontainers.image.ref.name` annotation (`skopeo` and `umoci`
/// read it as `oci:DIR:REF`). An existing layout keeps its other images;
/// an entry with the same ref name is replaced.
pub fn export_oci_layout(
    store: &Store,
    images: &[(&ImageRecord, &str)],
    dir: &Path,
) -> Result<(), ArchiveError> {
    let plan = plan(store, images)?;
    let blobs_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs_dir).map_err(io_error("create", &blobs_dir))?;
    write_atomic(&dir.join(LAYOUT_FILE), &layout_json())?;
    for digest in &plan.blobs {
        let dest = blob_file(dir, digest);
        if dest.is_file() {
            continue;
        }
        let tmp = dest.with_extension("tmp");
        fs::copy(store.blob_path(digest), &tmp).map_err(io_error("copy", &tmp))?;
        fs::rename(&tmp, &dest).map_err(io_error("rename", &tmp))?;
    }

    let index_path = dir.join(INDEX_FILE);
    let mut entries: Vec<Value> = match fs::read(&index_path) {
        Ok(bytes) => {
            let existing: Value =
                serde_json::from_slice(&bytes).map_err(|e| invalid(&index_path, e))?;
            existing["manifests"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
    let new_names: HashMap<&str, ()> = images.iter().map(|(_, name)| (*name, ())).collect();
    entries.retain(|entry| {
        let name = entry["annotations"][REF_NAME_ANNOTATION]
            .as_str()
            .unwrap_or("");
        !new_names.contains_key(name)
    });
    entries.extend(plan.entries);
    write_atomic(&index_path, &index_json(entries))
}

/// Writes `images` as an OCI archive: a tar of a layout, written to
/// `file.tmp` and renamed to `file` when complete.
pub fn export_oci_archive(
    store: &Store,
    images: &[(&ImageRecord, &str)],
    file: &Path,
) -> Result<(), ArchiveError> {
    super::check_output_dir(file)?;
    let plan = plan(store, images)?;
    let tmp = file.with_extension("tmp");
    let out = File::create(&tmp).map_err(io_error("create", &tmp))?;
    let mut tar = tar::Builder::new(out);
    let written = (|| -> std::io::Result<File> {
        append_bytes(&mut tar, LAYOUT_FILE, &layout_json())?;
        append_bytes(&mut tar, INDEX_FILE, &index_json(plan.entries))?;
        for digest in &plan.blobs {
            let name = format!("blobs/sha256/{}", digest.digest());
            tar.append_path_with_name(store.blob_path(digest), name)?;
        }
        let mut out = tar.into_inner()?;
        out.flush()?;
        out.sync_all()?;
        Ok(out)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("write", &tmp)(e));
    }
    fs::rename(&tmp, file).map_err(io_error("rename", &tmp))
}

pub(super) fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(now_unix());
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)
}
