//! Entries created by the worker pool give the same tree as applying every
//! entry in tar order on one thread (0 workers).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tar::EntryType;

use super::{tree, Layer, Sandbox};

const WORKERS: usize = 8;

/// Unpacks `tar` with 0 and with [`WORKERS`] workers, checks that both
/// trees and stats are equal, and returns the sandbox of the parallel run.
fn unpack_both(tar: &[u8]) -> Sandbox {
    let sequential = Sandbox::new();
    let expected = sequential.unpack_with_workers(tar, 0).unwrap();
    let parallel = Sandbox::new();
    let stats = parallel.unpack_with_workers(tar, WORKERS).unwrap();
    assert_eq!(stats, expected);
    assert_eq!(tree(&parallel.dest()), tree(&sequential.dest()));
    parallel
}

#[test]
fn parallel_file_replaced_by_later_entry() {
    let tar = Layer::new()
        .file("a", b"first")
        .file("b", b"b")
        .file("a", b"second")
        .file("d/f", b"file")
        .dir("d/f")
        .file("d/f/g", b"child")
        .finish();
    let sandbox = unpack_both(&tar);
    let dest = sandbox.dest();
    assert_eq!(fs::read(dest.join("a")).unwrap(), b"second");
    assert_eq!(fs::read(dest.join("d/f/g")).unwrap(), b"child");
}

#[test]
fn parallel_whiteout_of_earlier_file() {
    let tar = Layer::new()
        .file("etc/gone", b"created in this layer")
        .file("etc/kept", b"k")
        .file("etc/.wh.gone", b"")
        .finish();
    let sandbox = unpack_both(&tar);
    let meta = fs::symlink_metadata(sandbox.dest().join("etc/gone")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), 0);
    assert_eq!(fs::read(sandbox.dest().join("etc/kept")).unwrap(), b"k");
}

#[test]
fn parallel_hard_link_to_new_file() {
    let tar = Layer::new()
        .file("bin/tool", b"binary")
        .hard_link("bin/alias", "bin/tool")
        .symlink("bin/sym", "tool")
        .hard_link("bin/sym2", "bin/sym")
        .finish();
    let sandbox = unpack_both(&tar);
    let dest = sandbox.dest();
    let tool = fs::metadata(dest.join("bin/tool")).unwrap();
    let alias = fs::metadata(dest.join("bin/alias")).unwrap();
    assert_eq!(alias.ino(), tool.ino());
    assert_eq!(fs::read(dest.join("bin/alias")).unwrap(), b"binary");
    let sym = fs::symlink_metadata(dest.join("bin/sym")).unwrap();
    let sym2 = fs::symlink_metadata(dest.join("bin/sym2")).unwrap();
    assert_eq!(sym2.ino(), sym.ino());
}

#[test]
fn parallel_symlink_replaced_by_file() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside().join("secret");
    let target = outside.to_str().unwrap().to_owned();
    let tar = Layer::new()
        .symlink("link", &target)
        .file("link", b"replaced")
        .finish();
    let before = sandbox.around_dest();
    sandbox.unpack_with_workers(&tar, WORKERS).unwrap();
    let meta = fs::symlink_metadata(sandbox.dest().join("link")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(fs::read(sandbox.dest().join("link")).unwrap(), b"replaced");
    assert_eq!(sandbox.around_dest(), before);
    assert_eq!(fs::read(&outside).unwrap(), b"keep");
    unpack_both(&tar);
}

#[test]
fn parallel_child_of_queued_file_rejected() {
    let sandbox = Sandbox::new();
    let tar = Layer::new().file("a", b"file").file("a/b", b"x").finish();
    sandbox.expect_rejected(&tar, "a/b", "not a directory");
}

#[test]
fn parallel_child_of_queued_symlink_rejected() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside();
    let tar = Layer::new()
        .symlink("escape", outside.to_str().unwrap())
        .file("escape/secret", b"overwritten")
        .finish();
    sandbox.expect_rejected(&tar, "escape/secret", "symbolic link");
}

#[test]
fn parallel_worker_error_returned() {
    // Linux has no extended attribute namespace "user2", so the worker
    // fails to set it.
    let tar = Layer::new()
        .file("first", b"1")
        .pax(&[("SCHILY.xattr.user2.bad", b"v")])
        .file("bad", b"2")
        .file("after", b"3")
        .finish();
    let sequential = Sandbox::new().unpack_with_workers(&tar, 0).unwrap_err();
    let parallel = Sandbox::new()
        .unpack_with_workers(&tar, WORKERS)
        .unwrap_err();
    assert_eq!(parallel.to_string(), sequential.to_string());
    assert!(parallel.to_string().contains("\"bad\""), "{parallel}");
}

#[test]
fn parallel_many_files_match_sequential() {
    let mut layer = Layer::new();
    for d in 0..40 {
        layer.entry(
            EntryType::Directory,
            &format!("dir{d}"),
            None,
            b"",
            0o750,
            (d, d + 1),
            1_500_000_000 + d,
        );
        for f in 0..50 {
            let data = format!("file {f} in dir {d}");
            layer.entry(
                EntryType::Regular,
                &format!("dir{d}/f{f}"),
                None,
                data.as_bytes(),
                if f % 7 == 0 { 0o4755 } else { 0o644 },
                (1000 + f, 1000 + d),
                1_600_000_000 + f,
            );
        }
        layer.symlink(&format!("dir{d}/link"), "f0");
        layer.hard_link(&format!("dir{d}/hard"), &format!("dir{d}/f1"));
    }
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    layer.file("dir3/big", &big);
    layer.file("dir5/f5", b"replaced at the end");
    layer.file("dir6/.wh.f6", b"");
    let tar = layer.finish();

    let sandbox = unpack_both(&tar);
    let dest = sandbox.dest();
    assert_eq!(fs::read(dest.join("dir3/big")).unwrap(), big);
    assert_eq!(
        fs::read(dest.join("dir5/f5")).unwrap(),
        b"replaced at the end"
    );
    let setuid = fs::metadata(dest.join("dir9/f14")).unwrap();
    assert_eq!(setuid.mode() & 0o7777, 0o4755);
    assert_eq!((setuid.uid(), setuid.gid()), (1014, 1009));
    let dir = fs::metadata(dest.join("dir9")).unwrap();
    assert_eq!(dir.mtime(), 1_500_000_009);
}
