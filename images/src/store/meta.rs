//! Metadata in `ROOT/meta.redb`: images, snapshots, rootfs leases and
//! blob labels, each record a JSON value written in one transaction.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, Digest};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};
use super::Store;

pub(crate) type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

pub(crate) const IMAGES: JsonTable = TableDefinition::new("images");
pub(crate) const SNAPSHOTS: JsonTable = TableDefinition::new("snapshots");
pub(crate) const LEASES: JsonTable = TableDefinition::new("rootfs_leases");
pub(crate) const BLOB_LABELS: JsonTable = TableDefinition::new("blob_labels");
pub(crate) const COUNTERS: TableDefinition<'static, &'static str, u64> =
    TableDefinition::new("counters");

pub(crate) const NEXT_SNAPSHOT: &str = "next_snapshot";

/// Prefix of the blob label whose value lists, comma-separated, the
/// repositories on registry `<host>` the blob was pulled from or pushed to.
pub const SOURCE_LABEL_PREFIX: &str = "hull.distribution.source.";

/// A stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Normalised reference, such as `127.0.0.1:5000/library/busybox:latest`.
    pub name: String,
    /// The manifest or index that the reference resolved to.
    pub target: Descriptor,
    /// The image manifest for this host's platform: `target` itself, or the
    /// manifest selected from the index.
    pub manifest: Descriptor,
    /// Seconds since the Unix epoch.
    pub created: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// An unpacked layer, keyed by its diff_id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Directory number: the layer is in `ROOT/snapshots/<n>/fs`.
    pub n: u64,
    /// Bytes of regular files unpacked.
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// The layers a container's rootfs uses, kept from gc until released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsLease {
    pub image: String,
    /// diff_ids, bottom layer first.
    pub layers: Vec<Digest>,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn decode<T: DeserializeOwned>(table: JsonTable, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::InvalidRecord {
        table: table.name().to_string(),
        key: key.to_string(),
        source,
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("metadata records serialise to JSON")
}

impl Store {
    pub(crate) fn db_error(&self, error: impl Into<redb::Error>) -> StoreError {
        StoreError::Database {
            path: self.root().join("meta.redb"),
            source: Box::new(error.into()),
        }
    }

    /// Runs `f` in a write transaction and commits it when `f` succeeds.
    pub(crate) fn write_txn<R>(&self, f: impl FnOnce(&WriteTransaction) -> Result<R>) -> Result<R> {
        let txn = self.db().begin_write().map_err(|e| self.db_error(e))?;
        let value = f(&txn)?;
        txn.commit().map_err(|e| self.db_error(e))?;
        Ok(value)
    }

    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        table: JsonTable,
        key: &str,
    ) -> Result<Option<T>> {
        let txn = self.db().begin_read().map_err(|e| self.db_error(e))?;
        let open = txn.open_table(table).map_err(|e| self.db_error(e))?;
        let value = open.get(key).map_err(|e| self.db_error(e))?;
        value.map(|v| decode(table, key, v.value())).transpose()
    }

    pub(crate) fn list_json<T: DeserializeOwned>(
        &self,
        table: JsonTable,
    ) -> Result<Vec<(String, T)>> {
        let txn = self.db().begin_read().map_err(|e| self.db_error(e))?;
        let open = txn.open_table(table).map_err(|e| self.db_error(e))?;
        let mut out = Vec::new();
        for entry in open.iter().map_err(|e| self.db_error(e))? {
            let (key, value) = entry.map_err(|e| self.db_error(e))?;
            let key = key.value().to_string();
            let record = decode(table, &key, value.value())?;
            out.push((key, record));
        }
        Ok(out)
    }

    pub(crate) fn put_json<T: Serialize>(
        &self,
        txn: &WriteTransaction,
        table: JsonTable,
        key: &str,
        value: &T,
    ) -> Result<()> {
        let mut open = txn.open_table(table).map_err(|e| self.db_error(e))?;
        open.insert(key, encode(value).as_slice())
            .map_err(|e| self.db_error(e))?;
        Ok(())
    }

    pub(crate) fn remove_key(
        &self,
        txn: &WriteTransaction,
        table: JsonTable,
        key: &str,
    ) -> Result<bool> {
        let mut open = txn.open_table(table).map_err(|e| self.db_error(e))?;
        let removed = open.remove(key).map_err(|e| self.db_error(e))?;
        Ok(removed.is_some())
    }

    /// Creates or replaces the image record named `image.name`.
    pub fn put_image(&self, image: &ImageRecord) -> Result<()> {
        self.write_txn(|txn| self.put_json(txn, IMAGES, &image.name, image))
    }

    pub fn get_image(&self, name: &str) -> Result<ImageRecord> {
        self.get_json(IMAGES, name)?
            .ok_or_else(|| StoreError::ImageNotFound(name.to_string()))
    }

    /// Returns every image record, sorted by name.
    pub fn list_images(&self) -> Result<Vec<ImageRecord>> {
        Ok(self
            .list_json(IMAGES)?
            .into_iter()
            .map(|(_, image)| image)
            .collect())
    }

    /// Removes the image record; its blobs and snapshots stay until
    /// [`gc`](Self::gc).
    pub fn remove_image(&self, name: &str) -> Result<ImageRecord> {
        self.write_txn(|txn| {
            let image: ImageRecord = {
                let open = txn.open_table(IMAGES).map_err(|e| self.db_error(e))?;
                let value = open.get(name).map_err(|e| self.db_error(e))?;
                match value {
                    Some(v) => decode(IMAGES, name, v.value())?,
                    None => return Err(StoreError::ImageNotFound(name.to_string())),
                }
            };
            self.remove_key(txn, IMAGES, name)?;
            Ok(image)
        })
    }

    pub fn snapshot(&self, diff_id: &Digest) -> Result<Option<SnapshotRecord>> {
        self.get_json(SNAPSHOTS, diff_id.as_ref())
    }

    /// Returns every snapshot record by diff_id.
    pub fn list_snapshots(&self) -> Result<Vec<(String, SnapshotRecord)>> {
        self.list_json(SNAPSHOTS)
    }

    pub fn list_leases(&self) -> Result<Vec<(String, RootfsLease)>> {
        self.list_json(LEASES)
    }

    pub fn blob_labels(&self, digest: &Digest) -> Result<BTreeMap<String, String>> {
        Ok(self
            .get_json(BLOB_LABELS, digest.as_ref())?
            .unwrap_or_default())
    }

    /// Sets one label of a blob, keeping the others.
    pub fn set_blob_label(&self, digest: &Digest, key: &str, value: &str) -> Result<()> {
        self.update_labels(digest, |labels| {
            labels.insert(key.to_string(), value.to_string());
        })
    }

    /// Records that the blob is in `repository` on `registry`, so a push to
    /// another repository there can mount it instead of uploading it.
    pub fn add_blob_source(&self, digest: &Digest, registry: &str, repository: &str) -> Result<()> {
        let key = format!("{SOURCE_LABEL_PREFIX}{registry}");
        self.update_labels(digest, |labels| {
            let entry = labels.entry(key).or_default();
            if !entry.split(',').any(|r| r == repository) {
                if !entry.is_empty() {
                    entry.push(',');
                }
                entry.push_str(repository);
            }
        })
    }

    /// Returns the repositories on `registry` that the blob is known to be in.
    pub fn blob_sources(&self, digest: &Digest, registry: &str) -> Result<Vec<String>> {
        let key = format!("{SOURCE_LABEL_PREFIX}{registry}");
        Ok(self
            .blob_labels(digest)?
            .get(&key)
            .map(|v| {
                v.split(',')
                    .filter(|r| !r.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default())
    }

    fn update_labels(
        &self,
        digest: &Digest,
        update: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<()> {
        let key = digest.as_ref();
        self.write_txn(|txn| {
            let mut labels: BTreeMap<String, String> = {
                let open = txn.open_table(BLOB_LABELS).map_err(|e| self.db_error(e))?;
                let value = open.get(key).map_err(|e| self.db_error(e))?;
                match value {
                    Some(v) => decode(BLOB_LABELS, key, v.value())?,
                    None => BTreeMap::new(),
                }
            };
            update(&mut labels);
            self.put_json(txn, BLOB_LABELS, key, &labels)
        })
    }
}
