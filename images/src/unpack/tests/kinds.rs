//! Each entry kind and its metadata.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use tar::EntryType;

use super::{Layer, Sandbox};

fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buffer) {
        Ok(n) => {
            buffer.truncate(n);
            Some(buffer)
        }
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("lgetxattr {} {name}: {e}", path.display()),
    }
}

#[test]
fn unpack_regular_files_and_dirs() {
    let sandbox = Sandbox::new();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let tar = Layer::new()
        .dir("etc")
        .file("etc/hostname", b"box\n")
        .file("big", &big)
        .file("empty", b"")
        .finish();
    let stats = sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    assert_eq!(fs::read(dest.join("etc/hostname")).unwrap(), b"box\n");
    assert_eq!(fs::read(dest.join("big")).unwrap(), big);
    assert_eq!(fs::read(dest.join("empty")).unwrap(), b"");
    assert_eq!(stats.files, 4);
    assert_eq!(stats.bytes, tar.len() as u64);
}

#[test]
fn unpack_creates_missing_parents() {
    let sandbox = Sandbox::new();
    let tar = Layer::new().file("x/y/z", b"deep").finish();
    sandbox.unpack(&tar).unwrap();
    for dir in ["x", "x/y"] {
        let meta = fs::metadata(sandbox.dest().join(dir)).unwrap();
        assert!(meta.is_dir(), "{dir}");
        assert_eq!(meta.mode() & 0o7777, 0o755, "{dir}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{dir}");
    }
    assert_eq!(fs::read(sandbox.dest().join("x/y/z")).unwrap(), b"deep");
}

#[test]
fn unpack_symlink_target_kept_as_is() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .symlink("abs", "/etc/passwd")
        .symlink("rel", "../../nowhere")
        .symlink("dir/link", "target")
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    assert_eq!(
        fs::read_link(dest.join("abs")).unwrap().to_str(),
        Some("/etc/passwd")
    );
    assert_eq!(
        fs::read_link(dest.join("rel")).unwrap().to_str(),
        Some("../../nowhere")
    );
    assert_eq!(
        fs::read_link(dest.join("dir/link")).unwrap().to_str(),
        Some("target")
    );
}

#[test]
fn unpack_hard_links_share_inode() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .file("bin/busybox", b"elf")
        .hard_link("bin/sh", "bin/busybox")
        .hard_link("./sbin/init", "./bin/busybox")
        .symlink("s", "bin/busybox")
        .hard_link("s2", "s")
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    let inode = fs::metadata(dest.join("bin/busybox")).unwrap().ino();
    assert_eq!(fs::metadata(dest.join("bin/sh")).unwrap().ino(), inode);
    assert_eq!(fs::metadata(dest.join("sbin/init")).unwrap().ino(), inode);
    assert_eq!(fs::metadata(dest.join("bin/busybox")).unwrap().nlink(), 3);
    // A hard link to a symbolic link links the symbolic link itself.
    let link = fs::symlink_metadata(dest.join("s2")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(
        link.ino(),
        fs::symlink_metadata(dest.join("s")).unwrap().ino()
    );
}

#[test]
fn unpack_devices_and_fifos() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .device(EntryType::Char, "dev/null", 1, 3)
        .device(EntryType::Block, "dev/loop0", 7, 0)
        .device(EntryType::Fifo, "run/pipe", 0, 0)
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    let null = fs::symlink_metadata(dest.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o620);
    let loop0 = fs::symlink_metadata(dest.join("dev/loop0")).unwrap();
    assert!(loop0.file_type().is_block_device());
    assert_eq!(loop0.rdev(), rustix::fs::makedev(7, 0));
    let pipe = fs::symlink_metadata(dest.join("run/pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
}

#[test]
fn unpack_owner_and_setuid_mode() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .entry(
            EntryType::Regular,
            "su",
            None,
            b"x",
            0o4755,
            (1000, 1001),
            1,
        )
        .entry(EntryType::Directory, "shared", None, b"", 0o3777, (5, 6), 1)
        .entry(
            EntryType::Symlink,
            "link",
            Some("su"),
            b"",
            0o777,
            (7, 8),
            1,
        )
        .entry(EntryType::Regular, "sgid", None, b"y", 0o2711, (0, 50), 1)
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    let su = fs::metadata(dest.join("su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((su.uid(), su.gid()), (1000, 1001));
    let shared = fs::metadata(dest.join("shared")).unwrap();
    assert_eq!(shared.mode() & 0o7777, 0o3777);
    assert_eq!((shared.uid(), shared.gid()), (5, 6));
    let link = fs::symlink_metadata(dest.join("link")).unwrap();
    assert_eq!((link.uid(), link.gid()), (7, 8));
    let sgid = fs::metadata(dest.join("sgid")).unwrap();
    assert_eq!(sgid.mode() & 0o7777, 0o2711);
    assert_eq!((sgid.uid(), sgid.gid()), (0, 50));
}

#[test]
fn unpack_sets_mtimes_last() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .entry(EntryType::Directory, "d", None, b"", 0o755, (0, 0), 1_000)
        .entry(EntryType::Directory, "d/e", None, b"", 0o755, (0, 0), 2_000)
        .entry(
            EntryType::Regular,
            "d/e/f",
            None,
            b"f",
            0o644,
            (0, 0),
            3_000,
        )
        .entry(
            EntryType::Symlink,
            "d/l",
            Some("e"),
            b"",
            0o777,
            (0, 0),
            4_000,
        )
        .file("d/late", b"created after d")
        .pax(&[("mtime", b"5000.5")])
        .entry(EntryType::Regular, "precise", None, b"", 0o644, (0, 0), 1)
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    let mtime = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap().mtime();
    assert_eq!(mtime("d"), 1_000);
    assert_eq!(mtime("d/e"), 2_000);
    assert_eq!(mtime("d/e/f"), 3_000);
    assert_eq!(mtime("d/l"), 4_000);
    let precise = fs::metadata(dest.join("precise")).unwrap();
    assert_eq!(precise.mtime(), 5_000);
    assert_eq!(precise.mtime_nsec(), 500_000_000);
}

#[test]
fn unpack_pax_owner_overrides_header() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .pax(&[("uid", b"3000000"), ("gid", b"3000001")])
        .file("big-ids", b"")
        .finish();
    sandbox.unpack(&tar).unwrap();
    let meta = fs::metadata(sandbox.dest().join("big-ids")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (3_000_000, 3_000_001));
}

#[test]
fn unpack_long_names() {
    let sandbox = Sandbox::new();
    let gnu_name = format!("{}/{}", "d".repeat(80), "g".repeat(120));
    let pax_name = format!("{}/{}", "p".repeat(90), "q".repeat(150));
    let tar = Layer::new()
        .long_file(&gnu_name, b"gnu")
        .pax(&[("path", pax_name.as_bytes())])
        .file("short-in-header", b"pax")
        .finish();
    sandbox.unpack(&tar).unwrap();
    assert_eq!(fs::read(sandbox.dest().join(&gnu_name)).unwrap(), b"gnu");
    assert_eq!(fs::read(sandbox.dest().join(&pax_name)).unwrap(), b"pax");
    assert!(!sandbox.dest().join("short-in-header").exists());
}

#[test]
fn unpack_pax_xattrs() {
    // VFS_CAP_REVISION_2 with the effective flag, CAP_NET_RAW (13) permitted.
    let mut capability = Vec::new();
    capability.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    capability.extend_from_slice(&(1u32 << 13).to_le_bytes());
    capability.extend_from_slice(&[0; 12]);
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .pax(&[
            ("SCHILY.xattr.user.comment", b"hello"),
            ("SCHILY.xattr.security.capability", &capability),
        ])
        .entry(EntryType::Regular, "ping", None, b"x", 0o755, (0, 0), 1)
        .pax(&[
            ("SCHILY.xattr.trusted.note", b"dir"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ])
        .dir("d")
        .pax(&[("SCHILY.xattr.trusted.note", b"link")])
        .symlink("l", "ping")
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    assert_eq!(xattr(&dest.join("ping"), "user.comment").unwrap(), b"hello");
    assert_eq!(
        xattr(&dest.join("ping"), "security.capability").unwrap(),
        capability
    );
    assert_eq!(xattr(&dest.join("d"), "trusted.note").unwrap(), b"dir");
    assert_eq!(
        xattr(&dest.join("d"), "trusted.overlay.opaque"),
        None,
        "overlay attributes from PAX records are dropped"
    );
    assert_eq!(xattr(&dest.join("l"), "trusted.note").unwrap(), b"link");
}

#[test]
fn unpack_replaces_same_name() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .dir("a")
        .file("a/child", b"1")
        .file("a", b"now a file")
        .file("b", b"file")
        .dir("b")
        .file("b/child", b"2")
        .dir("c")
        .file("c/kept", b"3")
        .entry(EntryType::Directory, "c", None, b"", 0o700, (9, 9), 1)
        .file("f", b"old")
        .file("f", b"new")
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    assert_eq!(fs::read(dest.join("a")).unwrap(), b"now a file");
    assert_eq!(fs::read(dest.join("b/child")).unwrap(), b"2");
    assert_eq!(fs::read(dest.join("c/kept")).unwrap(), b"3");
    let c = fs::metadata(dest.join("c")).unwrap();
    assert_eq!(c.mode() & 0o7777, 0o700);
    assert_eq!((c.uid(), c.gid()), (9, 9));
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"new");
}

#[test]
fn unpack_root_entry_metadata() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .entry(EntryType::Directory, "./", None, b"", 0o750, (0, 0), 7_000)
        .file("a", b"")
        .finish();
    sandbox.unpack(&tar).unwrap();
    let meta = fs::metadata(sandbox.dest()).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o750);
    assert_eq!(meta.mtime(), 7_000);
}

#[test]
fn unpack_removed_dir_times_dropped() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .entry(
            EntryType::Directory,
            "gone",
            None,
            b"",
            0o755,
            (0, 0),
            1_000,
        )
        .entry(
            EntryType::Directory,
            "gone/sub",
            None,
            b"",
            0o755,
            (0, 0),
            1_000,
        )
        .file(".wh.gone", b"")
        .entry(
            EntryType::Directory,
            "file",
            None,
            b"",
            0o755,
            (0, 0),
            1_000,
        )
        .entry(EntryType::Regular, "file", None, b"f", 0o644, (0, 0), 9_000)
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    let gone = fs::symlink_metadata(dest.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    let file = fs::metadata(dest.join("file")).unwrap();
    assert!(file.is_file());
    assert_eq!(file.mtime(), 9_000);
}
