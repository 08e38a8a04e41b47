//! Tar streams for `cp`: a container's files written to stdout (`cp
//! CONTAINER:SRC -`) and an archive from stdin unpacked into a container
//! directory (`cp - CONTAINER:DEST`).
//!
//! Unpacking resolves the parent of each entry inside the container as
//! [`ContainerFs::resolve`] does, so symlinks in the container or in the
//! archive stay inside the container, and an entry whose path climbs out
//! of the destination with `..` is rejected.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use rustix::fs::{fchown, mkdirat, FileType, Mode};
use rustix::io::Errno;
use tar::{EntryType, Header};

use super::rootfs::{ContainerFs, Node};
use super::tree::{Meta, Ownership, Sink};
use super::writer::{apply_metadata, DestDir, Writer};

/// A [`Sink`] that appends entries to a tar stream.
pub struct TarSink<W: Write> {
    builder: tar::Builder<W>,
    /// The archive path of the current directory.
    prefix: PathBuf,
    /// Bytes of file content written.
    pub bytes: u64,
}

impl<W: Write> TarSink<W> {
    pub fn new(output: W) -> TarSink<W> {
        TarSink {
            builder: tar::Builder::new(output),
            prefix: PathBuf::new(),
            bytes: 0,
        }
    }

    /// Writes the end-of-archive blocks.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.builder
            .finish()
            .context("failed to write the tar stream")?;
        let mut output = self
            .builder
            .into_inner()
            .context("failed to write the tar stream")?;
        output.flush().context("failed to write the tar stream")
    }

    fn header(meta: &Meta, kind: EntryType) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(meta.mode & 0o7777);
        header.set_uid(u64::from(meta.uid));
        header.set_gid(u64::from(meta.gid));
        header.set_mtime(meta.mtime.0.max(0) as u64);
        header.set_size(0);
        header
    }
}

impl<W: Write> Sink for TarSink<W> {
    fn enter_dir(&mut self, name: &OsStr, meta: &Meta) -> anyhow::Result<()> {
        self.prefix.push(name);
        let mut header = Self::header(meta, EntryType::Directory);
        self.builder
            .append_data(&mut header, &self.prefix, std::io::empty())
            .with_context(|| format!("failed to archive {}", self.prefix.display()))
    }

    fn leave_dir(&mut self, _meta: &Meta) -> anyhow::Result<()> {
        self.prefix.pop();
        Ok(())
    }

    fn file(&mut self, name: &OsStr, meta: &Meta, data: &mut dyn Read) -> anyhow::Result<()> {
        let path = self.prefix.join(name);
        let mut header = Self::header(meta, EntryType::Regular);
        header.set_size(meta.size);
        // A file that grows while it is read is cut at the size in the
        // header, and one that shrinks is padded, as tar requires.
        let mut data = data
            .take(meta.size)
            .chain(std::io::repeat(0))
            .take(meta.size);
        self.builder
            .append_data(&mut header, &path, &mut data)
            .with_context(|| format!("failed to archive {}", path.display()))?;
        self.bytes += meta.size;
        Ok(())
    }

    fn symlink(&mut self, name: &OsStr, meta: &Meta, target: &OsStr) -> anyhow::Result<()> {
        let path = self.prefix.join(name);
        let mut header = Self::header(meta, EntryType::Symlink);
        self.builder
            .append_link(&mut header, &path, target)
            .with_context(|| format!("failed to archive {}", path.display()))
    }

    fn special(&mut self, name: &OsStr, meta: &Meta) -> anyhow::Result<()> {
        let path = self.prefix.join(name);
        let kind = match meta.file_type() {
            FileType::Fifo => EntryType::Fifo,
            FileType::CharacterDevice => EntryType::Char,
            _ => EntryType::Block,
        };
        let mut header = Self::header(meta, kind);
        let rdev = meta.rdev as _;
        header.set_device_major(rustix::fs::major(rdev))?;
        header.set_device_minor(rustix::fs::minor(rdev))?;
        self.builder
            .append_data(&mut header, &path, std::io::empty())
            .with_context(|| format!("failed to archive {}", path.display()))
    }
}

/// Returns the path of an archive entry relative to the destination:
/// leading `/` and `.` dropped, `..` applied, and an error when `..`
/// climbs above the destination.
pub fn entry_path(path: &Path) -> anyhow::Result<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::ParentDir => {
                if !relative.pop() {
                    bail!(
                        "invalid archive entry {}: it climbs out of the destination directory",
                        path.display()
                    );
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(relative)
}

/// Reads the metadata of an archive entry. Empty numeric fields read as
/// 0, as GNU tar reads them.
fn entry_meta(header: &Header, kind: FileType) -> anyhow::Result<Meta> {
    let mode = header.mode().unwrap_or(0);
    let uid = header.uid().unwrap_or(0);
    let gid = header.gid().unwrap_or(0);
    let mtime = header.mtime().unwrap_or(0) as i64;
    let major = header.device_major().ok().flatten().unwrap_or(0);
    let minor = header.device_minor().ok().flatten().unwrap_or(0);
    Ok(Meta {
        mode: (mode & 0o7777) | kind.as_raw_mode(),
        uid: u32::try_from(uid).unwrap_or(u32::MAX),
        gid: u32::try_from(gid).unwrap_or(u32::MAX),
        size: header.size().unwrap_or(0),
        rdev: rustix::fs::makedev(major, minor) as u64,
        atime: (mtime, 0),
        mtime: (mtime, 0),
    })
}

/// Unpacks the tar stream `input` into the directory at the canonical
/// path `destination` of the container, and returns the bytes of file
/// content written.
pub fn unpack(
    fs: &ContainerFs,
    destination: &Path,
    input: impl Read,
    ownership: Ownership,
) -> anyhow::Result<u64> {
    let mut archive = tar::Archive::new(input);
    let mut dirs = DirCache::default();
    // Directory metadata is applied last, since the entries created in a
    // directory change its times.
    let mut made_dirs: Vec<(PathBuf, Meta)> = Vec::new();
    let mut bytes = 0;
    let entries = archive.entries().context("failed to read the tar stream")?;
    for entry in entries {
        let mut entry = entry.context("failed to read the tar stream")?;
        let raw_path = entry
            .path()
            .context("invalid path in the archive")?
            .into_owned();
        let relative = entry_path(&raw_path)?;
        let (Some(name), Some(parent)) = (relative.file_name(), relative.parent()) else {
            // The destination itself, as `./`: it exists already.
            continue;
        };
        let name = name.to_owned();
        let (parent_path, parent_fd) = dirs.ensure(fs, destination, parent, ownership)?;
        let dir = DestDir {
            fd: parent_fd,
            path: Some(parent_path.clone()),
            read_only: fs.is_read_only(&parent_path),
            apply: false,
        };
        let mut writer = Writer::new(Some(fs), dir, ownership);
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Directory => {
                let meta = entry_meta(entry.header(), FileType::Directory)?;
                writer.push_dir(&name)?;
                if let Some(made) = writer.pop_dir() {
                    if made.apply {
                        made_dirs.push((parent_path.join(&name), meta));
                    }
                }
            }
            EntryType::Regular | EntryType::Continuous => {
                let meta = entry_meta(entry.header(), FileType::RegularFile)?;
                writer.file(&name, &meta, &mut entry)?;
                bytes += writer.bytes;
            }
            EntryType::Symlink => {
                let meta = entry_meta(entry.header(), FileType::Symlink)?;
                let target = entry
                    .link_name()
                    .context("invalid symlink target in the archive")?
                    .ok_or_else(|| {
                        anyhow!(
                            "symlink {} in the archive has no target",
                            raw_path.display()
                        )
                    })?
                    .into_owned();
                writer.symlink(&name, &meta, target.as_os_str())?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .context("invalid hard link target in the archive")?
                    .ok_or_else(|| {
                        anyhow!(
                            "hard link {} in the archive has no target",
                            raw_path.display()
                        )
                    })?
                    .into_owned();
                let target = destination.join(entry_path(&target)?);
                let resolved = fs.resolve(&target, false)?;
                let Node::Entry {
                    parent,
                    name: target_name,
                } = resolved.node
                else {
                    bail!(
                        "invalid hard link {} in the archive: its target is a directory",
                        raw_path.display()
                    );
                };
                writer.hard_link(&name, &parent, &target_name)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let meta = entry_meta(entry.header(), file_type)?;
                writer.special(&name, &meta)?;
            }
            other => {
                tracing::warn!(entry = %raw_path.display(), kind = ?other, "skipping an archive entry of an unsupported type");
            }
        }
    }
    for (path, meta) in made_dirs.iter().rev() {
        let fd = fs.open_dir(path)?;
        apply_metadata(&fd, meta, ownership, || {
            format!("{}:{}", fs.name, path.display())
        })?;
    }
    Ok(bytes)
}

/// The canonical paths of directories already made or found, so that each
/// entry does not resolve its parent from the destination again.
#[derive(Default)]
struct DirCache {
    canonical: HashMap<PathBuf, PathBuf>,
}

impl DirCache {
    /// Returns the canonical path and an open descriptor of directory
    /// `relative` below `destination`, creating the missing directories as
    /// `mkdir -p` does.
    fn ensure(
        &mut self,
        fs: &ContainerFs,
        destination: &Path,
        relative: &Path,
        ownership: Ownership,
    ) -> anyhow::Result<(PathBuf, OwnedFd)> {
        if let Some(path) = self.canonical.get(relative) {
            return Ok((path.clone(), fs.open_dir(path)?));
        }
        let Some(name) = relative.file_name() else {
            return Ok((destination.to_owned(), fs.open_dir(destination)?));
        };
        let parent = relative.parent().unwrap_or(Path::new(""));
        let (parent_path, _) = self.ensure(fs, destination, parent, ownership)?;
        let resolved = fs.resolve(&parent_path.join(name), true)?;
        let stat = resolved
            .node
            .stat()
            .with_context(|| format!("failed to read {}:{}", fs.name, resolved.path.display()))?;
        match stat.map(|stat| FileType::from_raw_mode(stat.st_mode)) {
            Some(FileType::Directory) => {}
            Some(_) => bail!("{}:{} is not a directory", fs.name, resolved.path.display()),
            None => make_dir(fs, &resolved.path, &resolved.node, ownership)?,
        }
        self.canonical
            .insert(relative.to_owned(), resolved.path.clone());
        let fd = fs.open_dir(&resolved.path)?;
        Ok((resolved.path, fd))
    }
}

/// Creates the missing directory `node` at `path`, mode 0755, owned by
/// root unless `ownership` names an owner.
fn make_dir(
    fs: &ContainerFs,
    path: &Path,
    node: &Node,
    ownership: Ownership,
) -> anyhow::Result<()> {
    let Node::Entry { parent, name } = node else {
        return Ok(());
    };
    let parent_path = path.parent().unwrap_or(Path::new("/"));
    if fs.is_read_only(parent_path) {
        bail!(
            "cannot write {}:{}: it is on a read-only mount or root filesystem",
            fs.name,
            path.display()
        );
    }
    match mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(errno) => return Err(fs.error(path, errno)),
    }
    let (uid, gid) = match ownership {
        Ownership::Set(uid, gid) => (uid, gid),
        Ownership::Keep => (0, 0),
    };
    let fd = fs.open_dir(path)?;
    fchown(
        &fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(|errno| fs.error(path, errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_stay_inside() {
        assert_eq!(
            entry_path(Path::new("./a/b")).unwrap(),
            PathBuf::from("a/b")
        );
        assert_eq!(
            entry_path(Path::new("/etc/passwd")).unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(entry_path(Path::new("a/../b")).unwrap(), PathBuf::from("b"));
        assert_eq!(entry_path(Path::new("./")).unwrap(), PathBuf::new());
        let err = entry_path(Path::new("a/../../etc"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("climbs out"), "{err}");
    }

    #[test]
    fn tar_sink_writes_entries() {
        let meta = |mode: u32| Meta {
            mode,
            uid: 1000,
            gid: 100,
            size: 0,
            rdev: 0,
            atime: (0, 0),
            mtime: (1_700_000_000, 0),
        };
        let mut output = Vec::new();
        let mut sink = TarSink::new(&mut output);
        sink.enter_dir(OsStr::new("dir"), &meta(0o040755)).unwrap();
        let mut file_meta = meta(0o100640);
        file_meta.size = 5;
        sink.file(OsStr::new("f"), &file_meta, &mut &b"hello"[..])
            .unwrap();
        sink.symlink(OsStr::new("l"), &meta(0o120777), OsStr::new("/etc/passwd"))
            .unwrap();
        sink.leave_dir(&meta(0o040755)).unwrap();
        sink.finish().unwrap();

        let mut archive = tar::Archive::new(&output[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let header = entry.header().clone();
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            let link = entry
                .link_name()
                .unwrap()
                .map(|link| link.display().to_string());
            seen.push((
                path,
                header.entry_type(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                content,
                link,
            ));
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].0.trim_end_matches('/'), "dir");
        assert_eq!(seen[0].1, EntryType::Directory);
        assert_eq!(seen[1].0, "dir/f");
        assert_eq!(seen[1].2, 0o640);
        assert_eq!(seen[1].3, 1000);
        assert_eq!(seen[1].4, "hello");
        assert_eq!(seen[2].1, EntryType::Symlink);
        assert_eq!(seen[2].5.as_deref(), Some("/etc/passwd"));
    }
}
