//! [`Writer`], the [`Sink`] that recreates a walked tree below a
//! destination directory, in the container or on the host.
//!
//! Every entry is created relative to the descriptor of its parent. A
//! file, symlink or device node first removes the non-directory at its
//! name and is then created with `O_EXCL` or its own `*at` call, and a
//! directory is opened with `O_NOFOLLOW`. A symlink at a destination name
//! is therefore replaced or rejected, and never followed.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use rustix::fs::{
    chownat, fchmod, fchown, futimens, mkdirat, mknodat, openat, statat, symlinkat, unlinkat,
    utimensat, AtFlags, FileType, Mode, OFlags,
};
use rustix::io::Errno;

use super::rootfs::{ContainerFs, Mount, Node};
use super::tree::{Meta, Ownership, Sink};

/// Applies owner, mode and times to an open file or directory. The mode
/// comes after the owner because chown clears setuid bits.
pub fn apply_metadata(
    fd: impl AsFd,
    meta: &Meta,
    ownership: Ownership,
    describe: impl Fn() -> String,
) -> anyhow::Result<()> {
    let (uid, gid) = ownership.ids(meta);
    fchown(&fd, uid, gid)
        .map_err(|errno| anyhow!("failed to change the owner of {}: {errno}", describe()))?;
    fchmod(&fd, meta.permissions())
        .map_err(|errno| anyhow!("failed to change the mode of {}: {errno}", describe()))?;
    futimens(&fd, &meta.timestamps())
        .map_err(|errno| anyhow!("failed to set the times of {}: {errno}", describe()))?;
    Ok(())
}

/// A directory that a [`Writer`] creates entries in.
pub struct DestDir {
    pub fd: OwnedFd,
    /// The path in the container, None on the host.
    pub path: Option<PathBuf>,
    pub read_only: bool,
    /// Whether `leave_dir` applies the source's owner, mode and times: not
    /// for the destination the copy started in, nor for mount points.
    pub apply: bool,
}

/// A [`Sink`] that recreates entries below a directory.
pub struct Writer<'a> {
    fs: Option<&'a ContainerFs>,
    ownership: Ownership,
    stack: Vec<DestDir>,
    /// Bytes of file content written.
    pub bytes: u64,
}

impl<'a> Writer<'a> {
    /// Creates a writer into `dir`, which belongs to the container of `fs`
    /// when that is given.
    pub fn new(fs: Option<&'a ContainerFs>, dir: DestDir, ownership: Ownership) -> Writer<'a> {
        Writer {
            fs,
            ownership,
            stack: vec![dir],
            bytes: 0,
        }
    }

    fn top(&self) -> &DestDir {
        self.stack
            .last()
            .expect("the writer's first directory is never left")
    }

    fn describe(&self, name: &OsStr) -> String {
        match (&self.top().path, self.fs) {
            (Some(path), Some(fs)) => format!("{}:{}", fs.name, path.join(name).display()),
            _ => PathBuf::from(name).display().to_string(),
        }
    }

    /// Fails when the current directory is read-only.
    fn check_writable(&self, name: &OsStr) -> anyhow::Result<()> {
        if self.top().read_only {
            bail!(
                "cannot write {}: it is on a read-only mount or root filesystem",
                self.describe(name)
            );
        }
        Ok(())
    }

    /// Returns the bind mount at entry `name`, or fails for another kind
    /// of mount there.
    fn mount_at(&self, name: &OsStr) -> anyhow::Result<Option<&Mount>> {
        let (Some(fs), Some(path)) = (self.fs, &self.top().path) else {
            return Ok(None);
        };
        let path = path.join(name);
        match fs.mount_at(&path) {
            Some(mount) if mount.is_bind() => Ok(Some(mount)),
            Some(mount) => bail!(
                "cannot write {}: it is a {} mount, which exists only inside the running container",
                self.describe(name),
                mount.kind
            ),
            None => Ok(None),
        }
    }

    /// Removes entry `name` of the current directory unless it is a
    /// directory, for a new non-directory to take its place.
    fn remove_non_dir(&self, name: &OsStr) -> anyhow::Result<()> {
        let dir = &self.top().fd;
        match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Directory => bail!(
                "cannot overwrite directory {} with a non-directory",
                self.describe(name)
            ),
            Ok(_) => unlinkat(dir, name, AtFlags::empty())
                .map_err(|errno| anyhow!("failed to replace {}: {errno}", self.describe(name))),
            Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(anyhow!("failed to read {}: {errno}", self.describe(name))),
        }
    }

    fn apply(
        &self,
        fd: impl AsFd,
        meta: &Meta,
        describe: impl Fn() -> String,
    ) -> anyhow::Result<()> {
        apply_metadata(fd, meta, self.ownership, describe)
    }

    /// Applies owner and times to entry `name` without following it, for
    /// symlinks and device nodes, whose mode was set at creation.
    fn apply_at(&self, name: &OsStr, meta: &Meta) -> anyhow::Result<()> {
        let dir = &self.top().fd;
        let (uid, gid) = self.ownership.ids(meta);
        chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(|errno| {
            anyhow!(
                "failed to change the owner of {}: {errno}",
                self.describe(name)
            )
        })?;
        utimensat(dir, name, &meta.timestamps(), AtFlags::SYMLINK_NOFOLLOW).map_err(|errno| {
            anyhow!(
                "failed to set the times of {}: {errno}",
                self.describe(name)
            )
        })?;
        Ok(())
    }

    /// Writes `data` over the file that a bind mount has at `name`, in
    /// place, since replacing it would leave the mount on the old file.
    fn write_mounted_file(
        &mut self,
        mount: &Mount,
        name: &OsStr,
        meta: &Meta,
        data: &mut dyn Read,
    ) -> anyhow::Result<()> {
        if mount.read_only {
            bail!(
                "cannot write {}: it is mounted read-only",
                self.describe(name)
            );
        }
        let fs = self.fs.expect("mounts exist only in containers");
        let Node::Entry {
            parent,
            name: file_name,
        } = fs.node(&mount.destination)?
        else {
            bail!(
                "cannot overwrite directory {} with a non-directory",
                self.describe(name)
            );
        };
        let fd = openat(
            &parent,
            &file_name,
            OFlags::WRONLY | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| anyhow!("failed to open {}: {errno}", self.describe(name)))?;
        let mut file = File::from(fd);
        self.bytes += std::io::copy(data, &mut file)
            .with_context(|| format!("failed to write {}", self.describe(name)))?;
        self.apply(&file, meta, || self.describe(name))
    }

    /// Creates directory `name` and makes it the current directory, for
    /// the directory entries that follow, without a sink's metadata.
    pub fn push_dir(&mut self, name: &OsStr) -> anyhow::Result<()> {
        if let Some(mount) = self.mount_at(name)? {
            let fs = self.fs.expect("mounts exist only in containers");
            let fd = fs.open_dir(&mount.destination)?;
            let read_only = mount.read_only;
            self.stack.push(DestDir {
                fd,
                path: Some(mount.destination.clone()),
                read_only,
                apply: false,
            });
            return Ok(());
        }
        self.check_writable(name)?;
        let top = self.top();
        match mkdirat(&top.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(errno) => bail!(
                "failed to create directory {}: {errno}",
                self.describe(name)
            ),
        }
        let fd = openat(
            &top.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            Errno::NOTDIR | Errno::LOOP => anyhow!(
                "cannot overwrite non-directory {} with a directory",
                self.describe(name)
            ),
            errno => anyhow!("failed to open {}: {errno}", self.describe(name)),
        })?;
        let dir = DestDir {
            fd,
            path: top.path.as_ref().map(|path| path.join(name)),
            read_only: top.read_only,
            apply: true,
        };
        self.stack.push(dir);
        Ok(())
    }

    /// Leaves the current directory without changing its metadata, and
    /// returns it.
    pub fn pop_dir(&mut self) -> Option<DestDir> {
        if self.stack.len() > 1 {
            self.stack.pop()
        } else {
            None
        }
    }

    /// Applies `meta` to a directory left with [`Writer::pop_dir`].
    pub fn apply_dir(&self, dir: &DestDir, meta: &Meta) -> anyhow::Result<()> {
        if !dir.apply {
            return Ok(());
        }
        let describe = || match (&dir.path, self.fs) {
            (Some(path), Some(fs)) => format!("{}:{}", fs.name, path.display()),
            _ => String::from("a copied directory"),
        };
        self.apply(&dir.fd, meta, describe)
    }

    /// Creates a hard link `name` to the entry `target_name` of
    /// `target_dir`, replacing a non-directory at `name`.
    pub fn hard_link(
        &mut self,
        name: &OsStr,
        target_dir: &OwnedFd,
        target_name: &OsStr,
    ) -> anyhow::Result<()> {
        if self.mount_at(name)?.is_some() {
            bail!(
                "cannot replace mount point {} with a hard link",
                self.describe(name)
            );
        }
        self.check_writable(name)?;
        self.remove_non_dir(name)?;
        rustix::fs::linkat(
            target_dir,
            target_name,
            &self.top().fd,
            name,
            AtFlags::empty(),
        )
        .map_err(|errno| {
            anyhow!(
                "failed to create hard link {}: {errno}",
                self.describe(name)
            )
        })
    }
}

impl Sink for Writer<'_> {
    fn enter_dir(&mut self, name: &OsStr, _meta: &Meta) -> anyhow::Result<()> {
        self.push_dir(name)
    }

    fn leave_dir(&mut self, meta: &Meta) -> anyhow::Result<()> {
        let dir = self
            .pop_dir()
            .ok_or_else(|| anyhow!("a copy left more directories than it entered"))?;
        self.apply_dir(&dir, meta)
    }

    fn file(&mut self, name: &OsStr, meta: &Meta, data: &mut dyn Read) -> anyhow::Result<()> {
        if let Some(mount) = self.mount_at(name)? {
            let mount = mount.clone();
            return self.write_mounted_file(&mount, name, meta, data);
        }
        self.check_writable(name)?;
        self.remove_non_dir(name)?;
        // O_EXCL with O_NOFOLLOW creates a new file, even when a symlink
        // appeared at the name since it was removed.
        let fd = openat(
            &self.top().fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|errno| anyhow!("failed to create {}: {errno}", self.describe(name)))?;
        let mut file = File::from(fd);
        self.bytes += std::io::copy(data, &mut file)
            .with_context(|| format!("failed to write {}", self.describe(name)))?;
        self.apply(&file, meta, || self.describe(name))
    }

    fn symlink(&mut self, name: &OsStr, meta: &Meta, target: &OsStr) -> anyhow::Result<()> {
        if self.mount_at(name)?.is_some() {
            bail!(
                "cannot replace mount point {} with a symlink",
                self.describe(name)
            );
        }
        self.check_writable(name)?;
        self.remove_non_dir(name)?;
        symlinkat(target, &self.top().fd, name).map_err(|errno| {
            anyhow!("failed to create symlink {}: {errno}", self.describe(name))
        })?;
        self.apply_at(name, meta)
    }

    fn special(&mut self, name: &OsStr, meta: &Meta) -> anyhow::Result<()> {
        if self.mount_at(name)?.is_some() {
            bail!(
                "cannot replace mount point {} with a device or FIFO",
                self.describe(name)
            );
        }
        self.check_writable(name)?;
        self.remove_non_dir(name)?;
        // A umask of 0 makes the mode exact without a chmod afterwards,
        // which could follow a symlink swapped in. hullctl creates no other
        // files meanwhile.
        let umask = rustix::process::umask(Mode::empty());
        let created = mknodat(
            &self.top().fd,
            name,
            meta.file_type(),
            meta.permissions(),
            meta.rdev as _,
        );
        rustix::process::umask(umask);
        created.map_err(|errno| anyhow!("failed to create {}: {errno}", self.describe(name)))?;
        self.apply_at(name, meta)
    }
}
