//! Unpacking of crafted layers built with the `tar` crate. The tests run
//! as root: they chown files and create devices.

mod compression;
mod escape;
mod kinds;
mod parallel;
mod whiteouts;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};
use tempfile::TempDir;

use super::{unpack_layer, unpack_layer_with_workers, Compression, UnpackError, UnpackStats};

/// A temp dir holding the empty destination `dest` and a sibling
/// `outside` with one file, to check that nothing lands outside `dest`.
pub(super) struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hull-unpack-")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("dest")).unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/secret"), b"keep").unwrap();
        Self { dir }
    }

    pub fn dest(&self) -> PathBuf {
        self.dir.path().join("dest")
    }

    pub fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// Lists everything in the sandbox except the contents of `dest`.
    pub fn around_dest(&self) -> BTreeMap<PathBuf, String> {
        let mut listing = tree(self.dir.path());
        listing.retain(|path, _| !path.starts_with("dest/"));
        listing
    }

    pub fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack_layer(tar, Compression::None, &self.dest())
    }

    pub fn unpack_with_workers(
        &self,
        tar: &[u8],
        workers: usize,
    ) -> Result<UnpackStats, UnpackError> {
        unpack_layer_with_workers(tar, Compression::None, &self.dest(), workers)
    }

    /// Unpacks `tar`, expects the layer to be rejected with a message that
    /// contains `reason`, and checks that nothing around `dest` changed.
    pub fn expect_rejected(&self, tar: &[u8], entry: &str, reason: &str) {
        let before = self.around_dest();
        let err = self.unpack(tar).expect_err("layer should be rejected");
        let message = err.to_string();
        assert!(
            matches!(err, UnpackError::Rejected { .. }),
            "unexpected error: {message}"
        );
        assert!(message.starts_with("layer rejected"), "{message}");
        assert!(message.contains(&format!("{entry:?}")), "{message}");
        assert!(message.contains(reason), "{message}");
        assert_eq!(self.around_dest(), before, "files outside dest changed");
        assert_eq!(
            fs::read(self.outside().join("secret")).unwrap(),
            b"keep",
            "outside/secret changed"
        );
    }
}

/// Builds a layer tar entry by entry.
pub(super) struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Layer {
    pub fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends an entry whose name and link name are written to the header
    /// as given, bypassing the `tar` crate's path checks.
    pub fn raw(
        &mut self,
        kind: EntryType,
        name: &str,
        link: Option<&str>,
        data: &[u8],
    ) -> &mut Self {
        let mut header = header(kind, data.len() as u64, 0o644);
        set_raw_name(&mut header, name, link);
        self.builder.append(&header, data).unwrap();
        self
    }

    /// Appends an entry with all header fields given.
    #[allow(clippy::too_many_arguments)]
    pub fn entry(
        &mut self,
        kind: EntryType,
        name: &str,
        link: Option<&str>,
        data: &[u8],
        mode: u32,
        owner: (u64, u64),
        mtime: u64,
    ) -> &mut Self {
        let mut header = header(kind, data.len() as u64, mode);
        header.set_uid(owner.0);
        header.set_gid(owner.1);
        header.set_mtime(mtime);
        set_raw_name(&mut header, name, link);
        self.builder.append(&header, data).unwrap();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(EntryType::Regular, name, None, data)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        let mut header = header(EntryType::Directory, 0, 0o755);
        set_raw_name(&mut header, name, None);
        self.builder.append(&header, &[][..]).unwrap();
        self
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Symlink, name, Some(target), b"")
    }

    pub fn hard_link(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Link, name, Some(target), b"")
    }

    /// Appends a PAX extended header that applies to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.builder
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    /// Appends a regular file through `append_data`, which writes a GNU
    /// long-name entry for names above 100 bytes.
    pub fn long_file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut header = header(EntryType::Regular, data.len() as u64, 0o644);
        self.builder.append_data(&mut header, name, data).unwrap();
        self
    }

    /// Appends a device node.
    pub fn device(&mut self, kind: EntryType, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut header = header(kind, 0, 0o620);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        set_raw_name(&mut header, name, None);
        self.builder.append(&header, &[][..]).unwrap();
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        self.builder.finish().unwrap();
        self.builder.get_ref().clone()
    }
}

fn header(kind: EntryType, size: u64, mode: u32) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_600_000_000);
    header
}

fn set_raw_name(header: &mut Header, name: &str, link: Option<&str>) {
    let old = header.as_old_mut();
    assert!(name.len() < old.name.len(), "use long_file for {name}");
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_cksum();
}

/// Describes every path below `root` (relative, sorted): type, mode,
/// owner, size, mtime of non-directories, device number, link target and
/// file contents.
pub(super) fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut listing = BTreeMap::new();
    walk(root, root, &mut listing);
    listing
}

fn walk(root: &Path, dir: &Path, listing: &mut BTreeMap<PathBuf, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let file_type = meta.file_type();
        let mut line = format!("mode={:o} owner={}:{}", meta.mode(), meta.uid(), meta.gid());
        if file_type.is_file() {
            line += &format!(
                " mtime={} data={:?}",
                meta.mtime(),
                fs::read(&path).unwrap()
            );
        } else if file_type.is_symlink() {
            line += &format!(" target={:?}", fs::read_link(&path).unwrap());
        } else if file_type.is_char_device() || file_type.is_block_device() {
            line += &format!(" rdev={}", meta.rdev());
        }
        listing.insert(path.strip_prefix(root).unwrap().to_owned(), line);
        if file_type.is_dir() {
            walk(root, &path, listing);
        }
    }
}
