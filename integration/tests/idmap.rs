//! Id-mapped bind mounts (`uidMappings`/`gidMappings`, `idmap`, `ridmap`).
//! runc 1.1.5 has none, so these tests run hull alone. The host
//! directories are temp dirs under /tmp. Its file system must support
//! id-mapped mounts, as ext4, xfs and btrfs do, and tmpfs since Linux 6.3.

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use hull_integration::{fixtures, host, require_root, unique_id, Bundle, Output, Runtime};
use serde_json::{json, Value};

/// First host id of the range mapped to the container's ids 0 to 65535 in
/// the user namespace tests.
const HOST_BASE: u32 = 300000;

/// Creates a host temp dir owned by 1000:1000 that contains `file`, also
/// owned by 1000:1000.
fn owned_source() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("hull-idmap-src-")
        .tempdir()
        .unwrap();
    fs::write(dir.path().join("file"), "data").unwrap();
    chown(dir.path().join("file"), Some(1000), Some(1000)).unwrap();
    chown(dir.path(), Some(1000), Some(1000)).unwrap();
    dir
}

/// Returns the owner columns (uid, gid) of the `ls -ln` line naming `name`.
fn owner_in_listing<'a>(listing: &'a str, name: &str) -> (&'a str, &'a str) {
    let line = listing
        .lines()
        .find(|l| l.split_whitespace().last() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{listing}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[2], fields[3])
}

fn owner_on_host(path: &Path) -> (u32, u32) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.uid(), meta.gid())
}

/// Returns a tmpfs mount at `/mnt`, so the bind mounts below it need no
/// directory in the shared fixture.
fn mnt_tmpfs() -> Value {
    json!({ "destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"] })
}

/// Returns a mapping list of one entry.
fn map(container_id: u32, host_id: u32, size: u32) -> Value {
    json!([{ "containerID": container_id, "hostID": host_id, "size": size }])
}

/// Creates a busybox bundle in a new user namespace that maps 0-65535 to
/// `HOST_BASE`, on a rootfs copy owned by the mapped root.
fn userns_bundle(script: &str) -> (Bundle, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("hull-idmap-rootfs-")
        .tempdir()
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixtures::busybox_rootfs())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("chown")
        .args(["-R", &format!("{HOST_BASE}:{HOST_BASE}")])
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success());
    let mut bundle = Bundle::busybox_sh(script);
    bundle.config["root"] = json!({ "path": rootfs, "readonly": false });
    bundle.config["linux"]["uidMappings"] = map(0, HOST_BASE, 65536);
    bundle.config["linux"]["gidMappings"] = map(0, HOST_BASE, 65536);
    bundle.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "user" }));
    (bundle, dir)
}

#[test]
fn idmap_without_user_namespace() {
    require_root!();
    let source = owned_source();
    let script = "ls -ln /mnt/data; touch /mnt/data/made; ls -ln /mnt/data; \
        grep ' /mnt/data ' /proc/self/mountinfo";
    let mut bundle = Bundle::busybox_sh(script);
    bundle.add_mount(mnt_tmpfs()).add_mount(json!({
        "destination": "/mnt/data", "type": "bind", "source": source.path(),
        "options": ["bind", "idmap"],
        "uidMappings": map(1000, 2000, 1),
        "gidMappings": map(1000, 3000, 1),
    }));
    bundle.config["process"]["user"] = json!({ "uid": 2000, "gid": 3000 });

    let output = Runtime::hull().run(&unique_id("idmap"), &bundle);
    output.expect_success();
    assert_eq!(owner_in_listing(&output.stdout, "file"), ("2000", "3000"));
    assert_eq!(owner_in_listing(&output.stdout, "made"), ("2000", "3000"));
    assert!(output.stdout.contains("idmapped"), "{output}");
    // On disk the ids are mapped back.
    assert_eq!(owner_on_host(&source.path().join("made")), (1000, 1000));
    assert_eq!(owner_on_host(&source.path().join("file")), (1000, 1000));
}

#[test]
fn idmap_in_user_namespace() {
    require_root!();
    let source = owned_source();
    // The default capabilities lack CAP_DAC_OVERRIDE.
    fs::set_permissions(source.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let script = "ls -ln /mnt/userns /mnt/explicit /mnt/plain; touch /mnt/userns/made-by-root";
    let (mut bundle, _rootfs) = userns_bundle(script);
    bundle
        .add_mount(mnt_tmpfs())
        // Without mappings, `idmap` takes the container's: host 0 is
        // container 0, so the files keep their owners as seen inside.
        .add_mount(json!({
            "destination": "/mnt/userns", "type": "bind", "source": source.path(),
            "options": ["bind", "idmap"],
        }))
        .add_mount(json!({
            "destination": "/mnt/explicit", "type": "bind", "source": source.path(),
            "options": ["rbind", "idmap"],
            "uidMappings": map(1000, HOST_BASE + 500, 1),
            "gidMappings": map(1000, HOST_BASE + 600, 1),
        }))
        .add_mount(json!({
            "destination": "/mnt/plain", "type": "bind", "source": source.path(),
            "options": ["bind"],
        }));

    let output = Runtime::hull().run(&unique_id("idmap-userns"), &bundle);
    output.expect_success();
    let sections: Vec<&str> = output.stdout.split("\n\n").collect();
    assert_eq!(sections.len(), 3, "{output}");
    assert!(sections[0].starts_with("/mnt/explicit:"), "{output}");
    assert!(sections[1].starts_with("/mnt/plain:"), "{output}");
    assert!(sections[2].starts_with("/mnt/userns:"), "{output}");
    assert_eq!(owner_in_listing(sections[0], "file"), ("500", "600"));
    // Host id 1000 is outside the container's mappings.
    assert_eq!(owner_in_listing(sections[1], "file"), ("65534", "65534"));
    assert_eq!(owner_in_listing(sections[2], "file"), ("1000", "1000"));
    // The container's root is host 0 through the mount.
    assert_eq!(owner_on_host(&source.path().join("made-by-root")), (0, 0));
}

#[test]
fn idmap_in_joined_user_namespace() {
    require_root!();
    let runtime = Runtime::hull();
    let (mut holder, _holder_rootfs) = userns_bundle("sleep 600");
    holder.config["process"]["terminal"] = json!(false);
    let holder_id = unique_id("idmap-holder");
    runtime.run_detached(&holder_id, &holder).expect_success();
    let pid = runtime.state_json(&holder_id)["pid"].as_i64().unwrap();

    let source = owned_source();
    let (mut bundle, _rootfs) = userns_bundle("ls -ln /mnt/data");
    let linux = bundle.config["linux"].as_object_mut().unwrap();
    linux.remove("uidMappings");
    linux.remove("gidMappings");
    bundle
        .join_namespace("user", Path::new(&format!("/proc/{pid}/ns/user")))
        .join_namespace("pid", Path::new(&format!("/proc/{pid}/ns/pid")))
        .add_mount(mnt_tmpfs())
        .add_mount(json!({
            "destination": "/mnt/data", "type": "bind", "source": source.path(),
            "options": ["bind", "idmap"],
        }));
    let output = runtime.run(&unique_id("idmap-joined"), &bundle);
    runtime.delete_force(&holder_id).expect_success();
    output.expect_success();
    // The joined namespace maps 0-65535 to HOST_BASE, as the new one does.
    assert_eq!(owner_in_listing(&output.stdout, "file"), ("1000", "1000"));
}

/// A tmpfs mounted on the host below a temp dir, unmounted on drop.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(target: &Path) -> HostTmpfs {
        fs::create_dir_all(target).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "hulltest"])
            .arg(target)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", target.display());
        HostTmpfs(target.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn ridmap_maps_submounts() {
    require_root!();
    let source = owned_source();
    let sub = HostTmpfs::mount(&source.path().join("sub"));
    fs::write(sub.0.join("inner"), "inner").unwrap();
    chown(sub.0.join("inner"), Some(1000), Some(1000)).unwrap();

    let script = "ls -ln /mnt/r/sub /mnt/t/sub";
    let mut bundle = Bundle::busybox_sh(script);
    bundle.add_mount(mnt_tmpfs());
    for (dest, option) in [("/mnt/r", "ridmap"), ("/mnt/t", "idmap")] {
        bundle.add_mount(json!({
            "destination": dest, "type": "bind", "source": source.path(),
            "options": ["rbind", option],
            "uidMappings": map(1000, 2000, 1),
            "gidMappings": map(1000, 2000, 1),
        }));
    }
    let output = Runtime::hull().run(&unique_id("ridmap"), &bundle);
    output.expect_success();
    let sections: Vec<&str> = output.stdout.split("\n\n").collect();
    assert_eq!(sections.len(), 2, "{output}");
    assert_eq!(owner_in_listing(sections[0], "inner"), ("2000", "2000"));
    // `idmap` maps the top mount only; the tmpfs below keeps its owners.
    assert_eq!(owner_in_listing(sections[1], "inner"), ("1000", "1000"));
}

/// Creates a container from `bundle`, expects the create to fail with an
/// error naming `/mnt/data` and `expected`, and checks that nothing of the
/// container is left: no state, no process.
fn expect_rejected(bundle: &Bundle, expected: &str) -> Output {
    let runtime = Runtime::hull();
    let id = unique_id("idmap-bad");
    let output = runtime.create(&id, bundle);
    output.expect_code(1);
    assert!(output.stderr.contains("/mnt/data"), "{output}");
    assert!(output.stderr.contains(expected), "{output}");
    assert!(!runtime.state_dir(&id).exists(), "{output}");
    assert_eq!(host::pids_with_cmdline(&id), Vec::<i32>::new());
    output
}

#[test]
fn invalid_idmap_mounts_are_rejected() {
    require_root!();
    let source = owned_source();
    let source = source.path();
    let cases = [
        (
            json!({ "destination": "/mnt/data", "type": "tmpfs", "source": "tmpfs",
                    "uidMappings": map(0, 1000, 1), "gidMappings": map(0, 1000, 1) }),
            "bind mounts only",
        ),
        (
            json!({ "destination": "/mnt/data", "type": "bind", "source": source,
                    "options": ["bind"], "uidMappings": map(0, 1000, 1) }),
            "uidMappings and gidMappings must be given together",
        ),
        (
            json!({ "destination": "/mnt/data", "type": "bind", "source": source,
                    "options": ["bind", "idmap"] }),
            "the container has none",
        ),
        (
            json!({ "destination": "/mnt/data", "type": "bind", "source": source,
                    "options": ["bind", "idmap"],
                    "uidMappings": [{ "containerID": 0, "hostID": 1000, "size": 10 },
                                    { "containerID": 5, "hostID": 5000, "size": 10 }],
                    "gidMappings": map(0, 1000, 1) }),
            "overlaps another entry",
        ),
        (
            json!({ "destination": "/mnt/data", "type": "bind", "source": "/sys/fs",
                    "options": ["bind", "idmap"],
                    "uidMappings": map(0, 1000, 1), "gidMappings": map(0, 1000, 1) }),
            "may not support id-mapped mounts",
        ),
        (
            json!({ "destination": "/mnt/data", "type": "bind", "source": source.join("missing"),
                    "options": ["bind", "idmap"],
                    "uidMappings": map(0, 1000, 1), "gidMappings": map(0, 1000, 1) }),
            "No such file or directory",
        ),
    ];
    for (mount, expected) in cases {
        let mut bundle = Bundle::busybox(&["true"]);
        bundle.add_mount(mnt_tmpfs()).add_mount(mount);
        expect_rejected(&bundle, expected);
    }
}

#[test]
fn features_report_idmap() {
    require_root!();
    let output = Runtime::hull().exec(&["features"]);
    output.expect_success();
    let features: Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(
        features["linux"]["mountExtensions"]["idmap"]["enabled"],
        json!(true),
        "{output}"
    );
}
