//! `cp`'s resolution and copies on a container filesystem laid out in a
//! temporary directory: a rootfs, bind mount sources and a host directory
//! that symlinks in the rootfs point at.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::json;
use tempfile::TempDir;

use super::rootfs::{ContainerFs, Node};
use super::tree::{send_dir, send_entry, Ownership, SourceDir};
use super::writer::{DestDir, Writer};

/// A fake container: `rootfs/`, a volume at `/data`, a read-only bind at
/// `/ro`, a file bind at `/etc/hosts`, a tmpfs at `/run`, and `outside/`,
/// a host directory that must stay untouched.
struct Layout {
    dir: TempDir,
    fs: ContainerFs,
}

impl Layout {
    fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        for sub in [
            "rootfs/etc",
            "rootfs/tmp",
            "rootfs/data",
            "rootfs/ro",
            "rootfs/run",
            "volume",
            "ro",
            "outside",
        ] {
            fs::create_dir_all(path.join(sub)).unwrap();
        }
        fs::write(path.join("rootfs/etc/passwd"), "container passwd\n").unwrap();
        fs::write(path.join("rootfs/etc/hosts"), "hidden by the mount\n").unwrap();
        fs::write(path.join("hosts"), "mounted hosts\n").unwrap();
        fs::write(path.join("volume/v.txt"), "volume\n").unwrap();
        fs::write(path.join("outside/secret"), "host secret\n").unwrap();
        symlink("../../../../../../..", path.join("rootfs/tmp/up")).unwrap();
        symlink(path.join("outside"), path.join("rootfs/tmp/abs")).unwrap();
        symlink("/etc/passwd", path.join("rootfs/tmp/pw")).unwrap();
        symlink("/data", path.join("rootfs/datalink")).unwrap();
        symlink("loop2", path.join("rootfs/loop1")).unwrap();
        symlink("loop1", path.join("rootfs/loop2")).unwrap();
        let spec = json!({
            "root": { "path": "rootfs" },
            "mounts": [
                { "destination": "/run", "type": "tmpfs", "source": "tmpfs" },
                { "destination": "/data", "type": "bind", "source": path.join("volume"), "options": ["rbind"] },
                { "destination": "/ro", "type": "bind", "source": path.join("ro"), "options": ["rbind", "ro"] },
                { "destination": "/etc/hosts", "type": "bind", "source": path.join("hosts"), "options": ["rbind"] },
            ],
        });
        let fs = ContainerFs::open("box", &path.join("rootfs"), &spec).unwrap();
        Layout { dir, fs }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn outside_unchanged(&self) {
        assert_eq!(
            fs::read_to_string(self.path("outside/secret")).unwrap(),
            "host secret\n"
        );
        assert_eq!(fs::read_dir(self.path("outside")).unwrap().count(), 1);
    }

    /// Creates a writer into the container directory at `path`.
    fn writer(&self, path: &str) -> Writer<'_> {
        let path = self.fs.resolve(Path::new(path), true).unwrap().path;
        let dir = DestDir {
            fd: self.fs.open_dir(&path).unwrap(),
            read_only: self.fs.is_read_only(&path),
            path: Some(path),
            apply: false,
        };
        Writer::new(Some(&self.fs), dir, Ownership::Keep)
    }

    /// Writes a file `name` with `content` into the container at `path`.
    fn write(&self, path: &str, name: &str, content: &str) -> anyhow::Result<()> {
        let source = self.path("source-file");
        fs::write(&source, content).unwrap();
        let dir = SourceDir {
            fd: rustix::fs::open(
                self.dir.path(),
                rustix::fs::OFlags::RDONLY,
                rustix::fs::Mode::empty(),
            )
            .unwrap(),
            path: None,
            fs: None,
        };
        send_entry(
            &dir,
            OsStr::new("source-file"),
            OsStr::new(name),
            &mut self.writer(path),
        )
    }
}

fn read(node: &Node) -> String {
    let Node::Entry { parent, name } = node else {
        panic!("expected a file, got {node:?}");
    };
    let fd = rustix::fs::openat(
        parent,
        name,
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    std::io::read_to_string(fs::File::from(fd)).unwrap()
}

#[test]
fn dotdot_symlink_stays_in_rootfs() {
    let layout = Layout::new();
    let resolved = layout
        .fs
        .resolve(Path::new("/tmp/up/etc/passwd"), true)
        .unwrap();
    assert_eq!(resolved.path, PathBuf::from("/etc/passwd"));
    assert_eq!(read(&resolved.node), "container passwd\n");
    let resolved = layout
        .fs
        .resolve(Path::new("/../../etc/passwd"), true)
        .unwrap();
    assert_eq!(resolved.path, PathBuf::from("/etc/passwd"));
}

#[test]
fn absolute_symlink_stays_in_rootfs() {
    let layout = Layout::new();
    let secret = layout.path("outside/secret");
    let through_link = layout.fs.resolve(Path::new("/tmp/abs/secret"), true);
    let err = through_link.unwrap_err().to_string();
    assert!(err.contains("No such file"), "{err}");
    let direct = layout.fs.resolve(&secret, true).unwrap_err().to_string();
    assert!(direct.contains("No such file"), "{direct}");
    layout.outside_unchanged();
}

#[test]
fn final_symlink_followed_on_request() {
    let layout = Layout::new();
    let link = layout.fs.resolve(Path::new("/tmp/pw"), false).unwrap();
    assert_eq!(link.path, PathBuf::from("/tmp/pw"));
    let target = layout.fs.resolve(Path::new("/tmp/pw"), true).unwrap();
    assert_eq!(target.path, PathBuf::from("/etc/passwd"));
    let err = layout
        .fs
        .resolve(Path::new("/loop1"), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbolic links"), "{err}");
}

#[test]
fn writes_through_symlinks_land_inside() {
    let layout = Layout::new();
    layout.write("/tmp/up/etc", "passwd", "replaced\n").unwrap();
    assert_eq!(
        fs::read_to_string(layout.path("rootfs/etc/passwd")).unwrap(),
        "replaced\n"
    );
    // The link at the final name is replaced, never written through.
    layout.write("/tmp", "abs", "file now\n").unwrap();
    assert_eq!(
        fs::read_to_string(layout.path("rootfs/tmp/abs")).unwrap(),
        "file now\n"
    );
    layout.outside_unchanged();
}

#[test]
fn symlink_into_volume_resolves_to_source() {
    let layout = Layout::new();
    let resolved = layout
        .fs
        .resolve(Path::new("/datalink/v.txt"), true)
        .unwrap();
    assert_eq!(resolved.path, PathBuf::from("/data/v.txt"));
    assert_eq!(read(&resolved.node), "volume\n");
    layout.write("/datalink", "new.txt", "new\n").unwrap();
    assert_eq!(
        fs::read_to_string(layout.path("volume/new.txt")).unwrap(),
        "new\n"
    );
    assert!(!layout.path("rootfs/data/new.txt").exists());
}

#[test]
fn read_only_and_tmpfs_mounts_reject_writes() {
    let layout = Layout::new();
    let err = layout.write("/ro", "f", "x").unwrap_err().to_string();
    assert!(err.contains("read-only"), "{err}");
    assert!(!layout.path("ro/f").exists());
    let err = layout
        .fs
        .resolve(Path::new("/run/x"), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tmpfs mount"), "{err}");
    let err = layout.write("/", "run", "x").unwrap_err().to_string();
    assert!(err.contains("tmpfs mount"), "{err}");
}

#[test]
fn file_mount_written_in_place() {
    let layout = Layout::new();
    layout.write("/etc", "hosts", "new hosts\n").unwrap();
    assert_eq!(
        fs::read_to_string(layout.path("hosts")).unwrap(),
        "new hosts\n"
    );
    assert_eq!(
        fs::read_to_string(layout.path("rootfs/etc/hosts")).unwrap(),
        "hidden by the mount\n"
    );
}

#[test]
fn tree_copy_reads_mount_sources() {
    let layout = Layout::new();
    let out = layout.path("out");
    fs::create_dir(&out).unwrap();
    let dest = DestDir {
        fd: rustix::fs::open(
            &out,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap(),
        path: None,
        read_only: false,
        apply: false,
    };
    let mut writer = Writer::new(None, dest, Ownership::Keep);
    let root = SourceDir {
        fd: layout.fs.open_dir(Path::new("/")).unwrap(),
        path: Some(PathBuf::from("/")),
        fs: Some(&layout.fs),
    };
    send_dir(&root, None, &mut writer).unwrap();
    assert_eq!(
        fs::read_to_string(out.join("data/v.txt")).unwrap(),
        "volume\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("etc/hosts")).unwrap(),
        "mounted hosts\n"
    );
    assert_eq!(
        fs::read_link(out.join("tmp/abs")).unwrap(),
        layout.path("outside")
    );
    assert!(
        out.join("run").is_dir(),
        "a tmpfs mount point is copied as the rootfs has it"
    );
    layout.outside_unchanged();
}

#[test]
fn directory_over_file_rejected() {
    let layout = Layout::new();
    let mut writer = layout.writer("/etc");
    let err = writer
        .push_dir(OsStr::new("passwd"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot overwrite non-directory"), "{err}");
    let err = layout.write("/", "etc", "x").unwrap_err().to_string();
    assert!(err.contains("cannot overwrite directory"), "{err}");
}
