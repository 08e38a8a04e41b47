//! Blobs addressed by their sha256 digest.
//!
//! A blob is written to `content/ingest/<hex>/data` under an exclusive
//! flock on the ingest directory, then verified, synced and renamed to
//! `content/blobs/sha256/<hex>`. Only [`BlobWriter::commit`] renames into
//! `blobs/`, and only after the size and digest matched, so every file there
//! contains the bytes its name promises.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm, MediaType};
use sha2::{Digest as _, Sha256};

use super::error::{Result, StoreError};
use super::Store;

/// Returns the sha256 digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    digest_from_hasher(Sha256::new_with_prefix(bytes))
}

pub(crate) fn digest_from_hasher(hasher: Sha256) -> Digest {
    let hex = hex::encode(hasher.finalize());
    Digest::try_from(format!("sha256:{hex}")).expect("a sha256 hex string is a valid digest")
}

/// Returns the hex part of a sha256 digest, the blob's file name.
pub(crate) fn sha256_hex(digest: &Digest) -> Result<&str> {
    match digest.algorithm() {
        DigestAlgorithm::Sha256 => Ok(digest.digest()),
        _ => Err(StoreError::UnsupportedDigest(digest.clone())),
    }
}

/// Takes an exclusive flock on `file`, waiting for the holder to release
/// it when `wait` is true. Returns `None` when `wait` is false and another
/// open file description holds the lock.
pub(crate) fn flock(file: File, path: &Path, wait: bool) -> Result<Option<Flock<File>>> {
    let arg = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    let mut file = file;
    loop {
        match Flock::lock(file, arg) {
            Ok(lock) => return Ok(Some(lock)),
            Err((_, Errno::EWOULDBLOCK)) if !wait => return Ok(None),
            Err((back, Errno::EINTR)) => file = back,
            Err((_, errno)) => return Err(StoreError::io("lock", path, errno.into())),
        }
    }
}

/// Opens `dir` and takes its flock, retrying when the directory was
/// removed and made again between the open and the lock (gc removes stale
/// ingest directories while holding their lock).
pub(crate) fn lock_dir(dir: &Path, wait: bool) -> Result<Option<Flock<File>>> {
    loop {
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
        let file = File::open(dir).map_err(|e| StoreError::io("open", dir, e))?;
        let Some(lock) = flock(file, dir, wait)? else {
            return Ok(None);
        };
        let held = lock
            .metadata()
            .map_err(|e| StoreError::io("stat", dir, e))?;
        match fs::metadata(dir) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(lock)),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io("stat", dir, e)),
        }
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("sync", dir, e))
}

/// A blob being written, holding the flock of its ingest directory.
///
/// Dropping it without [`commit`](Self::commit) keeps the partial data for
/// a later writer of the same digest to resume from.
pub struct BlobWriter {
    expected: Descriptor,
    ingest_dir: PathBuf,
    data_path: PathBuf,
    blob_path: PathBuf,
    file: File,
    hasher: Sha256,
    offset: u64,
    _lock: Flock<File>,
}

impl BlobWriter {
    /// Bytes in the file: those kept from an earlier attempt plus those
    /// written since.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Returns the descriptor that [`commit`](Self::commit) verifies against.
    pub fn descriptor(&self) -> &Descriptor {
        &self.expected
    }

    /// Path of the partial data, for readers that need the bytes kept from
    /// an earlier attempt (the first [`offset`](Self::offset) bytes).
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Drops the bytes written so far and starts the blob again.
    pub fn reset(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| StoreError::io("truncate", &self.data_path, e))?;
        self.hasher = Sha256::new();
        self.offset = 0;
        Ok(())
    }

    /// Checks the size and digest of the bytes written so far against the
    /// descriptor, changing nothing.
    pub fn verify(&self) -> Result<()> {
        let digest = self.expected.digest();
        if self.offset != self.expected.size() {
            return Err(StoreError::SizeMismatch {
                digest: digest.clone(),
                expected: self.expected.size(),
                actual: self.offset,
            });
        }
        let actual = digest_from_hasher(self.hasher.clone());
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Verifies the size and digest, syncs the data and renames it into
    /// `blobs/`. On a mismatch the partial data is removed, so the next
    /// attempt starts from zero: callers whose source ended early drop the
    /// writer instead, keeping the data for a resume.
    pub fn commit(self) -> Result<Descriptor> {
        if let Err(e) = self.verify() {
            let _ = fs::remove_dir_all(&self.ingest_dir);
            return Err(e);
        }
        self.file
            .sync_all()
            .map_err(|e| StoreError::io("sync", &self.data_path, e))?;
        fs::rename(&self.data_path, &self.blob_path)
            .map_err(|e| StoreError::io("rename", &self.data_path, e))?;
        let blobs_dir = self.blob_path.parent().expect("blob path has a parent");
        sync_dir(blobs_dir)?;
        let _ = fs::remove_dir_all(&self.ingest_dir);
        Ok(self.expected)
    }

    /// Removes the partial data and releases the lock.
    pub fn discard(self) {
        let _ = fs::remove_dir_all(&self.ingest_dir);
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Store {
    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root().join("content/blobs/sha256")
    }

    pub(crate) fn ingest_root(&self) -> PathBuf {
        self.root().join("content/ingest")
    }

    /// Path of the blob's file; it exists only when the blob is stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.digest())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        sha256_hex(digest).is_ok() && self.blob_path(digest).is_file()
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        sha256_hex(digest)?;
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound(digest.clone()),
            _ => StoreError::io("read", path, e),
        })
    }

    /// Opens a writer for the blob `desc` describes. Waits while another
    /// writer, in this or another process, has the same digest open, and returns
    /// [`StoreError::AlreadyExists`] when the blob is stored, also when it
    /// was committed during that wait.
    ///
    /// The call blocks: async callers run it on a blocking thread.
    pub fn writer(&self, desc: &Descriptor) -> Result<BlobWriter> {
        let hex = sha256_hex(desc.digest())?;
        let blob_path = self.blob_path(desc.digest());
        if blob_path.is_file() {
            return Err(StoreError::AlreadyExists(desc.digest().clone()));
        }
        let ingest_dir = self.ingest_root().join(hex);
        let lock = lock_dir(&ingest_dir, true)?.expect("a waiting lock is always taken");
        if blob_path.is_file() {
            let _ = fs::remove_dir_all(&ingest_dir);
            return Err(StoreError::AlreadyExists(desc.digest().clone()));
        }
        let data_path = ingest_dir.join("data");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data_path)
            .map_err(|e| StoreError::io("open", &data_path, e))?;
        let mut hasher = Sha256::new();
        let mut offset = 0u64;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("stat", &data_path, e))?
            .len();
        if len > desc.size() {
            file.set_len(0)
                .map_err(|e| StoreError::io("truncate", &data_path, e))?;
        } else if len > 0 {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| StoreError::io("read", &data_path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                offset += n as u64;
            }
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| StoreError::io("seek", &data_path, e))?;
        Ok(BlobWriter {
            expected: desc.clone(),
            ingest_dir,
            data_path,
            blob_path,
            file,
            hasher,
            offset,
            _lock: lock,
        })
    }

    /// Stores `bytes`, which must match `desc`. Returns without writing when
    /// the blob is already stored.
    pub fn write_blob(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        let mut writer = match self.writer(desc) {
            Ok(writer) => writer,
            Err(StoreError::AlreadyExists(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if writer.offset() > 0 {
            writer.reset()?;
        }
        writer
            .write_all(bytes)
            .map_err(|e| StoreError::io("write", writer.data_path().to_path_buf(), e))?;
        writer.commit().map(drop)
    }

    /// Stores a small in-memory blob and returns its descriptor.
    pub fn put_blob(&self, bytes: &[u8], media_type: MediaType) -> Result<Descriptor> {
        let desc = Descriptor::new(media_type, bytes.len() as u64, sha256_digest(bytes));
        self.write_blob(&desc, bytes)?;
        Ok(desc)
    }

    /// Stores the file at `path` as the blob `desc` describes, verifying it.
    pub fn copy_blob_from(&self, desc: &Descriptor, path: &Path) -> Result<()> {
        let mut writer = match self.writer(desc) {
            Ok(writer) => writer,
            Err(StoreError::AlreadyExists(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if writer.offset() > 0 {
            writer.reset()?;
        }
        let mut source = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
        io::copy(&mut source, &mut writer).map_err(|e| StoreError::io("copy", path, e))?;
        writer.commit().map(drop)
    }
}
