//! Volume store, resolution and first fill, on temporary directories.
//! Tests that set owners or make device nodes return early unless root.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use rustix::fs::{self as rfs, FileType, Mode, XattrFlags};

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    volumes: Volumes,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            root: dir.path().join("root"),
            run_root: dir.path().join("run"),
        };
        let volumes = Volumes::new(&paths);
        Fixture { dir, volumes }
    }

    fn rootfs(&self) -> PathBuf {
        let rootfs = self.dir.path().join("rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        rootfs
    }

    fn names(&self) -> Vec<String> {
        let records = self.volumes.list().unwrap();
        records.into_iter().map(|record| record.name).collect()
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn not_used(_: &str) -> Vec<String> {
    Vec::new()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn create_returns_existing_volume() {
    let fixture = Fixture::new();
    let created = fixture
        .volumes
        .create(Some("data"), labels(&[("tier", "db")]))
        .unwrap();
    assert_eq!(created.name, "data");
    assert_eq!(created.driver, "local");
    assert!(!created.anonymous);
    assert!(created.mountpoint.is_dir());
    assert!(created.mountpoint.ends_with("volumes/data/_data"));
    let mode = fs::metadata(&created.mountpoint)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert!(chrono::DateTime::parse_from_rfc3339(&created.created_at).is_ok());

    let again = fixture
        .volumes
        .create(Some("data"), labels(&[("other", "x")]))
        .unwrap();
    assert_eq!(again, created);
    assert_eq!(fixture.volumes.inspect("data").unwrap(), created);
}

#[test]
fn anonymous_volume_gets_random_name() {
    let fixture = Fixture::new();
    let first = fixture.volumes.create(None, BTreeMap::new()).unwrap();
    let second = fixture.volumes.create(None, BTreeMap::new()).unwrap();
    assert!(first.anonymous);
    assert_eq!(first.name.len(), 64);
    assert!(first.name.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(first.name, second.name);
}

#[test]
fn list_is_sorted_and_skips_hidden() {
    let fixture = Fixture::new();
    for name in ["zz", "aa", "mm"] {
        fixture.volumes.create(Some(name), BTreeMap::new()).unwrap();
    }
    assert_eq!(fixture.names(), ["aa", "mm", "zz"]);
    assert!(Fixture::new().volumes.list().unwrap().is_empty());
}

#[test]
fn invalid_names_rejected() {
    let fixture = Fixture::new();
    for name in ["../escape", "a", ".lock", "a/b", ""] {
        let error = fixture
            .volumes
            .create(Some(name), BTreeMap::new())
            .unwrap_err();
        assert!(
            error.to_string().contains("invalid volume name"),
            "{name}: {error}"
        );
        assert!(fixture.volumes.inspect(name).is_err(), "{name}");
    }
    assert!(!fixture.dir.path().join("escape").exists());
}

#[test]
fn inspect_missing_is_not_found() {
    let fixture = Fixture::new();
    let error = fixture.volumes.inspect("absent").unwrap_err();
    assert!(is_not_found(&error), "{error}");
    assert_eq!(error.to_string(), "no such volume: absent");
}

#[test]
fn remove_rejects_volume_in_use() {
    let fixture = Fixture::new();
    let record = fixture
        .volumes
        .create(Some("busy"), BTreeMap::new())
        .unwrap();
    fs::write(record.mountpoint.join("keep"), "data").unwrap();

    let users = |name: &str| {
        assert_eq!(name, "busy");
        vec![String::from("web"), String::from("db")]
    };
    for force in [false, true] {
        let error = fixture.volumes.remove("busy", &users, force).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("in use"), "{message}");
        assert!(message.contains("web, db"), "{message}");
        assert_eq!(
            fs::read_to_string(record.mountpoint.join("keep")).unwrap(),
            "data"
        );
    }

    fixture.volumes.remove("busy", &not_used, false).unwrap();
    assert!(fixture.names().is_empty());
    assert_eq!(entries(&fixture.volumes.dir), [".lock"]);
}

#[test]
fn remove_missing_volume() {
    let fixture = Fixture::new();
    let error = fixture
        .volumes
        .remove("ghost", &not_used, false)
        .unwrap_err();
    assert!(is_not_found(&error), "{error}");
    fixture.volumes.remove("ghost", &not_used, true).unwrap();
}

#[test]
fn prune_removes_unused_anonymous_volumes() {
    let fixture = Fixture::new();
    let named = fixture
        .volumes
        .create(Some("named"), BTreeMap::new())
        .unwrap();
    let unused = fixture.volumes.create(None, BTreeMap::new()).unwrap();
    let used = fixture.volumes.create(None, BTreeMap::new()).unwrap();
    fs::write(unused.mountpoint.join("a"), vec![0u8; 1000]).unwrap();
    fs::create_dir(unused.mountpoint.join("sub")).unwrap();
    fs::write(unused.mountpoint.join("sub/b"), vec![0u8; 500]).unwrap();
    fs::hard_link(unused.mountpoint.join("a"), unused.mountpoint.join("a2")).unwrap();
    fs::write(named.mountpoint.join("n"), vec![0u8; 7]).unwrap();

    let used_name = used.name.clone();
    let in_use = move |name: &str| {
        if name == used_name {
            vec![String::from("c1")]
        } else {
            Vec::new()
        }
    };
    let report = fixture.volumes.prune(&in_use, false).unwrap();
    assert_eq!(report.removed, std::slice::from_ref(&unused.name));
    assert_eq!(report.reclaimed_bytes, 1500);
    let mut expected = vec![String::from("named"), used.name.clone()];
    expected.sort();
    assert_eq!(fixture.names(), expected);

    let report = fixture.volumes.prune(&in_use, true).unwrap();
    assert_eq!(report.removed, ["named"]);
    assert_eq!(report.reclaimed_bytes, 7);
    assert_eq!(fixture.names(), [used.name]);
}

#[test]
fn crash_leftovers_are_deleted() {
    let fixture = Fixture::new();
    fixture
        .volumes
        .create(Some("kept"), BTreeMap::new())
        .unwrap();
    let creating = fixture.volumes.dir.join(".creating-half");
    let removing = fixture.volumes.dir.join(".removing-old-42");
    fs::create_dir_all(creating.join("_data")).unwrap();
    fs::create_dir_all(removing.join("_data/deep")).unwrap();
    assert_eq!(fixture.names(), ["kept"]);

    fixture
        .volumes
        .create(Some("other"), BTreeMap::new())
        .unwrap();
    assert!(!creating.exists());
    assert!(!removing.exists());
    assert_eq!(fixture.names(), ["kept", "other"]);
}

#[test]
fn corrupt_record_named_in_error() {
    let fixture = Fixture::new();
    let record = fixture
        .volumes
        .create(Some("broken"), BTreeMap::new())
        .unwrap();
    let file = record.mountpoint.parent().unwrap().join("volume.json");
    fs::write(&file, "{not json").unwrap();
    let error = format!("{:#}", fixture.volumes.inspect("broken").unwrap_err());
    assert!(error.contains(&file.display().to_string()), "{error}");
    // Creating it again must not replace the record silently.
    assert!(fixture
        .volumes
        .create(Some("broken"), BTreeMap::new())
        .is_err());
    assert!(fixture.names().is_empty());
}

/// Writes the image content for the copy tests below `rootfs/data`.
fn image_tree(rootfs: &Path, outside: &Path) {
    let data = rootfs.join("data");
    fs::create_dir_all(data.join("sub/deeper")).unwrap();
    fs::write(data.join("file"), "content").unwrap();
    fs::set_permissions(data.join("file"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::write(data.join("sub/deeper/leaf"), "leaf").unwrap();
    fs::hard_link(data.join("file"), data.join("sub/link-to-file")).unwrap();
    symlink("../file", data.join("sub/relative")).unwrap();

    // Symlinks that lead out of the rootfs when followed on the host.
    symlink(outside, data.join("absolute-out")).unwrap();
    symlink("../../../../../../../..", data.join("dotdot-out")).unwrap();
    symlink(outside.join("secret"), data.join("sub/secret-link")).unwrap();

    rfs::mknodat(
        rfs::CWD,
        data.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o620),
        0,
    )
    .unwrap();
    // The umask applies to mknod.
    fs::set_permissions(data.join("fifo"), fs::Permissions::from_mode(0o620)).unwrap();

    fs::set_permissions(data.join("sub"), fs::Permissions::from_mode(0o2710)).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o750)).unwrap();
    rfs::setxattr(
        data.join("file"),
        "user.origin",
        b"image",
        XattrFlags::empty(),
    )
    .unwrap();
    set_times(&data.join("sub/deeper/leaf"), 1_000_000_000, 5);
    set_times(&data.join("sub/deeper"), 1_100_000_000, 0);
}

fn set_times(path: &Path, seconds: i64, nanoseconds: i64) {
    let time = rfs::Timespec {
        tv_sec: seconds,
        tv_nsec: nanoseconds,
    };
    let times = rfs::Timestamps {
        last_access: time,
        last_modification: time,
    };
    rfs::utimensat(rfs::CWD, path, &times, rfs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn outside_dir(fixture: &Fixture) -> PathBuf {
    let outside = fixture.dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "host secret").unwrap();
    outside
}

#[test]
fn resolve_copies_image_content() {
    if !is_root() {
        eprintln!("skipping: owners need root");
        return;
    }
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    let outside = outside_dir(&fixture);
    image_tree(&rootfs, &outside);
    rfs::chownat(
        rfs::CWD,
        rootfs.join("data/file"),
        Some(rfs::Uid::from_raw(1234)),
        Some(rfs::Gid::from_raw(5678)),
        rfs::AtFlags::empty(),
    )
    .unwrap();
    // chown clears the set-user-id bit.
    fs::set_permissions(rootfs.join("data/file"), fs::Permissions::from_mode(0o4751)).unwrap();
    rfs::chownat(
        rfs::CWD,
        rootfs.join("data"),
        Some(rfs::Uid::from_raw(1000)),
        Some(rfs::Gid::from_raw(1001)),
        rfs::AtFlags::empty(),
    )
    .unwrap();
    rfs::chownat(
        rfs::CWD,
        rootfs.join("data/sub/relative"),
        Some(rfs::Uid::from_raw(77)),
        Some(rfs::Gid::from_raw(88)),
        rfs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let symlink_xattr = rfs::lsetxattr(
        rootfs.join("data/sub/relative"),
        "trusted.hull-test",
        b"link",
        XattrFlags::empty(),
    )
    .is_ok();

    let request = parse_volume_flag("store:/data").unwrap();
    let mounts = fixture.volumes.resolve(&[request], &[], &rootfs).unwrap();
    assert_eq!(mounts.len(), 1);
    let resolved = &mounts[0];
    assert_eq!(resolved.volume.as_deref(), Some("store"));
    assert!(!resolved.anonymous);
    assert_eq!(resolved.kind, MountKind::Volume);
    let data = fixture.volumes.inspect("store").unwrap().mountpoint;
    assert_eq!(resolved.mount.destination(), Path::new("/data"));
    assert_eq!(resolved.mount.typ().as_deref(), Some("bind"));
    assert_eq!(resolved.mount.source().as_deref(), Some(data.as_path()));
    assert_eq!(
        resolved.mount.options().clone().unwrap(),
        ["rbind", "rprivate"]
    );

    assert_eq!(
        entries(&data),
        ["absolute-out", "dotdot-out", "fifo", "file", "sub"]
    );
    // The volume root takes the owner and mode of the image directory.
    let root_meta = fs::metadata(&data).unwrap();
    assert_eq!((root_meta.uid(), root_meta.gid()), (1000, 1001));
    assert_eq!(root_meta.mode() & 0o7777, 0o750);

    let file = fs::symlink_metadata(data.join("file")).unwrap();
    assert_eq!(fs::read_to_string(data.join("file")).unwrap(), "content");
    assert_eq!((file.uid(), file.gid()), (1234, 5678));
    assert_eq!(file.mode() & 0o7777, 0o4751);
    assert_eq!(file.nlink(), 2);
    let linked = fs::symlink_metadata(data.join("sub/link-to-file")).unwrap();
    assert_eq!(linked.ino(), file.ino());
    let mut origin = [0u8; 16];
    let len = rfs::getxattr(data.join("file"), "user.origin", &mut origin[..]).unwrap();
    assert_eq!(&origin[..len], b"image");

    let sub = fs::metadata(data.join("sub")).unwrap();
    assert_eq!(sub.mode() & 0o7777, 0o2710);
    let leaf = fs::metadata(data.join("sub/deeper/leaf")).unwrap();
    assert_eq!((leaf.mtime(), leaf.mtime_nsec()), (1_000_000_000, 5));
    let deeper = fs::metadata(data.join("sub/deeper")).unwrap();
    assert_eq!(deeper.mtime(), 1_100_000_000);

    let fifo = fs::symlink_metadata(data.join("fifo")).unwrap();
    assert_eq!(FileType::from_raw_mode(fifo.mode()), FileType::Fifo);
    assert_eq!(fifo.mode() & 0o7777, 0o620);

    // Symlinks are copied as symlinks, never followed out of the rootfs.
    let relative = fs::symlink_metadata(data.join("sub/relative")).unwrap();
    assert!(relative.file_type().is_symlink());
    assert_eq!((relative.uid(), relative.gid()), (77, 88));
    assert_eq!(
        fs::read_link(data.join("sub/relative")).unwrap(),
        Path::new("../file")
    );
    for (link, target) in [
        ("absolute-out", outside.clone()),
        ("dotdot-out", PathBuf::from("../../../../../../../..")),
        ("sub/secret-link", outside.join("secret")),
    ] {
        let meta = fs::symlink_metadata(data.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link}");
        assert_eq!(fs::read_link(data.join(link)).unwrap(), target, "{link}");
    }
    if symlink_xattr {
        let mut value = [0u8; 16];
        let len = rfs::lgetxattr(
            data.join("sub/relative"),
            "trusted.hull-test",
            &mut value[..],
        )
        .unwrap();
        assert_eq!(&value[..len], b"link");
    }
    assert!(fixture.volumes.inspect("store").unwrap().initialised);
}

#[test]
fn escaping_mount_point_stays_in_rootfs() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    let outside = outside_dir(&fixture);
    symlink(&outside, rootfs.join("absolute")).unwrap();
    symlink("../../outside", rootfs.join("relative")).unwrap();
    fs::create_dir_all(rootfs.join("real")).unwrap();
    fs::write(rootfs.join("real/inside"), "inside").unwrap();
    symlink("/real", rootfs.join("alias")).unwrap();
    fs::create_dir_all(rootfs.join("walk")).unwrap();
    symlink("../..", rootfs.join("walk/up")).unwrap();

    let requests = [
        parse_volume_flag("abs:/absolute").unwrap(),
        parse_volume_flag("rel:/relative").unwrap(),
        parse_volume_flag("alias:/alias").unwrap(),
        parse_volume_flag("up:/walk/up/outside").unwrap(),
    ];
    fixture.volumes.resolve(&requests, &[], &rootfs).unwrap();
    for name in ["abs", "rel", "up"] {
        let data = fixture.volumes.inspect(name).unwrap().mountpoint;
        assert!(entries(&data).is_empty(), "{name}: {:?}", entries(&data));
    }
    // A symlink at the mount point resolves inside the rootfs, as the
    // container would see it.
    let alias = fixture.volumes.inspect("alias").unwrap().mountpoint;
    assert_eq!(entries(&alias), ["inside"]);
}

#[test]
fn initialises_only_once() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    fs::create_dir_all(rootfs.join("etc/app")).unwrap();
    fs::write(rootfs.join("etc/app/conf"), "default").unwrap();

    let request = parse_volume_flag("conf:/etc/app").unwrap();
    fixture
        .volumes
        .resolve(std::slice::from_ref(&request), &[], &rootfs)
        .unwrap();
    let data = fixture.volumes.inspect("conf").unwrap().mountpoint;
    assert_eq!(entries(&data), ["conf"]);

    // An emptied volume stays empty: the image fills it only once.
    fs::remove_file(data.join("conf")).unwrap();
    fixture.volumes.resolve(&[request], &[], &rootfs).unwrap();
    assert!(entries(&data).is_empty());
}

#[test]
fn non_empty_volume_not_filled() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    fs::create_dir_all(rootfs.join("srv")).unwrap();
    fs::write(rootfs.join("srv/from-image"), "image").unwrap();
    let record = fixture
        .volumes
        .create(Some("mine"), BTreeMap::new())
        .unwrap();
    fs::write(record.mountpoint.join("own"), "own").unwrap();

    let request = parse_volume_flag("mine:/srv").unwrap();
    fixture.volumes.resolve(&[request], &[], &rootfs).unwrap();
    assert_eq!(entries(&record.mountpoint), ["own"]);
    assert!(fixture.volumes.inspect("mine").unwrap().initialised);
}

#[test]
fn volume_without_image_content_fills_later() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    let request = parse_volume_flag("late:/opt").unwrap();
    fixture
        .volumes
        .resolve(std::slice::from_ref(&request), &[], &rootfs)
        .unwrap();
    assert!(!fixture.volumes.inspect("late").unwrap().initialised);

    fs::create_dir_all(rootfs.join("opt")).unwrap();
    fs::write(rootfs.join("opt/tool"), "tool").unwrap();
    fixture.volumes.resolve(&[request], &[], &rootfs).unwrap();
    let record = fixture.volumes.inspect("late").unwrap();
    assert_eq!(entries(&record.mountpoint), ["tool"]);
    assert!(record.initialised);
}

#[test]
fn nocopy_leaves_volume_empty() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    fs::create_dir_all(rootfs.join("data")).unwrap();
    fs::write(rootfs.join("data/file"), "x").unwrap();
    let request = parse_mount_flag("source=bare,target=/data,volume-nocopy,ro").unwrap();
    let mounts = fixture.volumes.resolve(&[request], &[], &rootfs).unwrap();
    let data = fixture.volumes.inspect("bare").unwrap().mountpoint;
    assert!(entries(&data).is_empty());
    assert_eq!(
        mounts[0].mount.options().clone().unwrap(),
        ["rbind", "rprivate", "ro"]
    );
}

#[test]
fn concurrent_initialisation_copies_once() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    fs::create_dir_all(rootfs.join("data")).unwrap();
    for i in 0..200 {
        fs::write(rootfs.join(format!("data/f{i}")), "x").unwrap();
    }
    fixture
        .volumes
        .create(Some("shared"), BTreeMap::new())
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let copies: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                let volumes = fixture.volumes.clone();
                let rootfs = rootfs.clone();
                scope.spawn(move || {
                    barrier.wait();
                    volumes.initialise("shared", &rootfs, "/data").unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        copies.iter().filter(|copied| **copied).count(),
        1,
        "{copies:?}"
    );
    let data = fixture.volumes.inspect("shared").unwrap().mountpoint;
    assert_eq!(entries(&data).len(), 200);
}

#[test]
fn image_volumes_become_anonymous() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    fs::create_dir_all(rootfs.join("var/lib/db")).unwrap();
    fs::write(rootfs.join("var/lib/db/seed"), "seed").unwrap();
    let host = fixture.dir.path().join("host-logs");
    let requests = [
        parse_volume_flag(&format!("{}:/logs:ro", host.display())).unwrap(),
        parse_tmpfs_flag("/var/lib/db/tmp:size=1m").unwrap(),
    ];
    let declared = [String::from("/var/lib/db"), String::from("/logs")];
    let mounts = fixture
        .volumes
        .resolve(&requests, &declared, &rootfs)
        .unwrap();

    let destinations: Vec<&Path> = mounts
        .iter()
        .map(|m| m.mount.destination().as_path())
        .collect();
    assert_eq!(
        destinations,
        [
            Path::new("/logs"),
            Path::new("/var/lib/db"),
            Path::new("/var/lib/db/tmp")
        ]
    );
    // -v creates a missing host directory.
    assert!(host.is_dir());
    assert_eq!(mounts[0].kind, MountKind::Bind);
    assert_eq!(
        mounts[0].mount.options().clone().unwrap(),
        ["rbind", "rprivate", "ro"]
    );
    assert_eq!(mounts[0].mount.source().as_deref(), Some(host.as_path()));

    let db = &mounts[1];
    assert!(db.anonymous);
    let name = db.volume.clone().unwrap();
    let record = fixture.volumes.inspect(&name).unwrap();
    assert!(record.anonymous);
    assert_eq!(entries(&record.mountpoint), ["seed"]);

    let tmpfs = &mounts[2];
    assert_eq!(tmpfs.mount.typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        tmpfs.mount.options().clone().unwrap(),
        ["noexec", "nosuid", "nodev", "size=1m"]
    );
}

#[test]
fn failed_resolve_removes_new_anonymous_volumes() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    let missing = fixture.dir.path().join("missing");
    let requests = [
        parse_volume_flag("/anon").unwrap(),
        parse_volume_flag("kept:/kept").unwrap(),
        parse_mount_flag(&format!("type=bind,source={},target=/b", missing.display())).unwrap(),
    ];
    let error = fixture
        .volumes
        .resolve(&requests, &[], &rootfs)
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not exist"), "{error}");
    assert!(error.contains(&missing.display().to_string()), "{error}");
    assert!(!missing.exists());
    assert_eq!(fixture.names(), ["kept"]);
}

#[test]
fn removed_volume_not_initialised() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    fixture
        .volumes
        .create(Some("gone"), BTreeMap::new())
        .unwrap();
    fixture.volumes.remove("gone", &not_used, false).unwrap();
    let error = fixture
        .volumes
        .initialise("gone", &rootfs, "/data")
        .unwrap_err();
    assert!(is_not_found(&error), "{error}");
}

/// Unmounts a test's mount when dropped, also when the test fails.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn failed_copy_leaves_volume_empty() {
    if !is_root() {
        eprintln!("skipping: mounting a tmpfs needs root");
        return;
    }
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    fs::create_dir_all(rootfs.join("data/dir")).unwrap();
    for i in 0..20 {
        fs::write(rootfs.join(format!("data/dir/small{i}")), "x").unwrap();
    }
    fs::write(rootfs.join("data/big"), vec![1u8; 1 << 20]).unwrap();
    let record = fixture
        .volumes
        .create(Some("tiny"), BTreeMap::new())
        .unwrap();
    // A volume filesystem too small for the image content.
    rustix::mount::mount(
        "tmpfs",
        &record.mountpoint,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        c"size=64k",
    )
    .unwrap();
    let guard = MountGuard(record.mountpoint.clone());

    let error = fixture
        .volumes
        .initialise("tiny", &rootfs, "/data")
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("failed to copy /data of the image into volume tiny"),
        "{message}"
    );
    assert!(message.contains("No space left on device"), "{message}");
    assert!(entries(&record.mountpoint).is_empty());
    assert!(!fixture.volumes.inspect("tiny").unwrap().initialised);

    drop(guard);
    assert!(fixture
        .volumes
        .initialise("tiny", &rootfs, "/data")
        .unwrap());
    assert_eq!(entries(&record.mountpoint), ["big", "dir"]);
}

#[test]
fn interrupted_fill_is_redone() {
    let fixture = Fixture::new();
    let rootfs = fixture.rootfs();
    fs::create_dir_all(rootfs.join("data")).unwrap();
    fs::write(rootfs.join("data/whole"), "whole").unwrap();
    let mut record = fixture
        .volumes
        .create(Some("half"), BTreeMap::new())
        .unwrap();
    // What a crash in the middle of a fill leaves.
    fs::write(record.mountpoint.join("partial"), "part").unwrap();
    record.filling = true;
    let dir = fs::File::open(record.mountpoint.parent().unwrap()).unwrap();
    write_record(dir.as_fd(), &record).unwrap();

    assert!(fixture
        .volumes
        .initialise("half", &rootfs, "/data")
        .unwrap());
    assert_eq!(entries(&record.mountpoint), ["whole"]);
    let stored = fixture.volumes.inspect("half").unwrap();
    assert!(stored.initialised);
    assert!(!stored.filling);
}
