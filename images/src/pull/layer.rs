//! Storing one layer: its blob under `content/blobs`, and its unpacked tar
//! as a snapshot keyed by diff_id. The blob comes from a registry stream
//! (written and unpacked at the same time) or from a stored file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use bytes::Bytes;
use futures_util::StreamExt;
use oci_spec::image::{Descriptor, Digest};
use tokio::sync::mpsc;

use super::{PullError, Reporter};
use crate::registry::RegistryClient;
use crate::store::{BlobWriter, Store, StoreError, TmpSnapshot};
use crate::unpack::{self, Compression};
use crate::Reference;

/// Media type of an uncompressed Docker layer, which
/// [`Compression::from_media_type`] does not map.
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Returns how a layer of `media_type` is compressed.
pub(crate) fn layer_compression(
    media_type: &str,
    digest: &Digest,
) -> Result<Compression, PullError> {
    if media_type == DOCKER_LAYER_TAR {
        return Ok(Compression::None);
    }
    Compression::from_media_type(media_type).map_err(|source| PullError::Unpack {
        layer: digest.clone(),
        source,
    })
}

/// Unpacks `reader` into a new snapshot, checks that the uncompressed
/// digest is `diff_id` and records the snapshot. Runs on a blocking thread.
pub(crate) fn unpack_into_snapshot(
    store: &Store,
    reader: impl Read,
    layer: &Descriptor,
    diff_id: &Digest,
) -> Result<PathBuf, PullError> {
    let (tmp, size) = unpack_to_tmp(store, reader, layer, diff_id)?;
    Ok(store.commit_snapshot(tmp, diff_id, size)?)
}

/// Unpacks `reader` into a new tmp snapshot and checks that the
/// uncompressed digest is `diff_id`. Returns the snapshot, not yet
/// recorded, and the uncompressed size.
fn unpack_to_tmp(
    store: &Store,
    reader: impl Read,
    layer: &Descriptor,
    diff_id: &Digest,
) -> Result<(TmpSnapshot, u64), PullError> {
    let compression = layer_compression(layer.media_type().as_ref(), layer.digest())?;
    let tmp = store.new_snapshot()?;
    let stats = unpack::unpack_layer(reader, compression, &tmp.fs_dir()).map_err(|source| {
        PullError::Unpack {
            layer: layer.digest().clone(),
            source,
        }
    })?;
    if stats.diff_id != *diff_id {
        return Err(PullError::DiffIdMismatch {
            layer: layer.digest().clone(),
            expected: diff_id.to_string(),
            actual: stats.diff_id.to_string(),
        });
    }
    Ok((tmp, stats.bytes))
}

/// Unpacks the stored blob `layer` into the snapshot `diff_id`.
pub(crate) fn unpack_stored(
    store: &Store,
    layer: &Descriptor,
    diff_id: &Digest,
) -> Result<PathBuf, PullError> {
    let path = store.blob_path(layer.digest());
    let file = File::open(&path).map_err(|e| StoreError::io("open", path, e))?;
    unpack_into_snapshot(store, file, layer, diff_id)
}

/// A message from the download loop to the blocking writer thread.
enum Chunk {
    Data(Bytes),
    /// The stream ended; without it, a closed channel means the download
    /// was dropped and nothing is committed.
    End,
}

/// Reads the chunks sent over a channel; a closed channel is the end.
struct ChannelReader {
    rx: Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(chunk) => self.current = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Stores the layer `layer` of `reference` with snapshot `diff_id`, unless
/// both are stored already. Holds the layer's in-process lock throughout,
/// so a concurrent pull of the same layer waits and then finds it.
pub(crate) async fn pull_layer(
    client: &RegistryClient,
    store: &Store,
    reference: &Reference,
    layer: &Descriptor,
    diff_id: &Digest,
    reporter: &Reporter,
) -> Result<(), PullError> {
    let id = super::short_id(layer.digest());
    let lock = store.layer_lock(layer.digest());
    let _held = lock.lock().await;
    let has_snapshot = store.snapshot_dir(diff_id).is_some();
    if store.has_blob(layer.digest()) && has_snapshot {
        reporter
            .send(&id, super::Action::Exists, layer.size(), layer.size())
            .await;
        return Ok(());
    }
    let writer = {
        let store = store.clone();
        let layer = layer.clone();
        tokio::task::spawn_blocking(move || store.writer(&layer)).await?
    };
    let writer = match writer {
        Ok(writer) => writer,
        Err(StoreError::AlreadyExists(_)) => {
            if !has_snapshot {
                reporter
                    .send(&id, super::Action::Unpacking, 0, layer.size())
                    .await;
                let (store, layer, diff_id) = (store.clone(), layer.clone(), diff_id.clone());
                tokio::task::spawn_blocking(move || unpack_stored(&store, &layer, &diff_id))
                    .await??;
            }
            reporter
                .send(&id, super::Action::Done, layer.size(), layer.size())
                .await;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };

    let offset = writer.offset();
    let mut stream = client.fetch_blob(reference, layer, offset).await?;
    let (tx, rx) = mpsc::channel::<Chunk>(32);
    let task = {
        let store = store.clone();
        let diff_id = (!has_snapshot).then(|| diff_id.clone());
        tokio::task::spawn_blocking(move || write_and_unpack(&store, writer, rx, diff_id))
    };
    let mut current = offset;
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => {
                current += bytes.len() as u64;
                if tx.send(Chunk::Data(bytes)).await.is_err() {
                    break;
                }
                reporter.update(&id, super::Action::Downloading, current, layer.size());
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_none() {
        let _ = tx.send(Chunk::End).await;
    }
    drop(tx);
    let result = task.await?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    result?;
    reporter
        .send(&id, super::Action::Done, layer.size(), layer.size())
        .await;
    Ok(())
}

/// Writes the chunks from `rx` to the blob and, when `diff_id` is set,
/// unpacks them at the same time on a second thread, which first reads
/// the bytes kept from an earlier attempt. Commits the blob and the
/// snapshot only when the stream ended, the digest matched and the
/// uncompressed digest equals `diff_id`.
fn write_and_unpack(
    store: &Store,
    mut writer: BlobWriter,
    mut rx: mpsc::Receiver<Chunk>,
    diff_id: Option<Digest>,
) -> Result<(), PullError> {
    let layer = writer.descriptor().clone();
    let partial = if writer.offset() > 0 && diff_id.is_some() {
        let path = writer.data_path().to_path_buf();
        let file = File::open(&path).map_err(|e| StoreError::io("open", path, e))?;
        Some(file.take(writer.offset()))
    } else {
        None
    };
    std::thread::scope(|scope| {
        let (unpack_tx, unpacker): (Option<SyncSender<Bytes>>, _) = match &diff_id {
            Some(diff_id) => {
                let (unpack_tx, unpack_rx) = sync_channel::<Bytes>(16);
                let reader = ChannelReader {
                    rx: unpack_rx,
                    current: Bytes::new(),
                };
                let layer = &layer;
                let handle = scope.spawn(move || match partial {
                    Some(partial) => unpack_to_tmp(store, partial.chain(reader), layer, diff_id),
                    None => unpack_to_tmp(store, reader, layer, diff_id),
                });
                (Some(unpack_tx), Some(handle))
            }
            None => (None, None),
        };
        let mut ended = false;
        let mut write_error = None;
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Chunk::Data(bytes) => {
                    if let Err(e) = writer.write_all(&bytes) {
                        write_error = Some(StoreError::io("write", writer.data_path(), e));
                        break;
                    }
                    if let Some(unpack_tx) = &unpack_tx {
                        // The unpacker stops early only on an error, which
                        // its result reports.
                        let _ = unpack_tx.send(bytes);
                    }
                }
                Chunk::End => {
                    ended = true;
                    break;
                }
            }
        }
        drop(rx);
        drop(unpack_tx);
        let unpacked = unpacker.map(|handle| handle.join().expect("unpack thread panicked"));
        if let Some(e) = write_error {
            return Err(e.into());
        }
        if !ended {
            // Dropped download: keep the partial data for a resume.
            return Err(PullError::Interrupted(layer.digest().clone()));
        }
        if writer.offset() < layer.size() {
            return Err(PullError::Truncated {
                digest: layer.digest().clone(),
                received: writer.offset(),
                size: layer.size(),
            });
        }
        if let Err(e) = writer.verify() {
            writer.discard();
            return Err(e.into());
        }
        let snapshot = match unpacked {
            Some(Err(e)) => {
                writer.discard();
                return Err(e);
            }
            Some(Ok(snapshot)) => Some(snapshot),
            None => None,
        };
        writer.commit()?;
        if let (Some((tmp, size)), Some(diff_id)) = (snapshot, &diff_id) {
            store.commit_snapshot(tmp, diff_id, size)?;
        }
        Ok(())
    })
}
