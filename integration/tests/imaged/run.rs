//! Images pulled through hull-imaged, made into bundles by `hullctl bundle
//! create` and run by `hull run`.

use hull_integration::image::{app_image_layout, IMAGE_SCRIPT};
use hull_integration::registry::Registry;
use hull_integration::{host, require_root, require_tools, unique_id, Output, Runtime};

use crate::bundles::BundleDir;
use crate::fixture::Imaged;

/// Repository the app image is pushed to.
const APP_REPOSITORY: &str = "test/app";

/// Pushes the app image (busybox with user `app` and a full config) to
/// `registry`, pulls it with hullctl and returns its reference.
fn pull_app_image(imaged: &Imaged, registry: &Registry) -> String {
    let layout = app_image_layout(&imaged.dir.path().join("app"), "test");
    registry.push_layout(&layout, "test", &format!("{APP_REPOSITORY}:1"), &[]);
    let reference = format!("{}/{APP_REPOSITORY}:1", registry.host());
    imaged.hullctl_ok(&["pull", "-q", &reference]);
    reference
}

/// Returns the values of the `key=...` lines a container printed.
fn single<'a>(output: &'a Output, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    let found: Vec<&str> = output
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(found.len(), 1, "expected one {key}= line in:\n{output}");
    found[0]
}

fn env_lines(output: &Output) -> Vec<&str> {
    output
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("env:"))
        .collect()
}

fn hard_nofile_limit() -> u64 {
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit(RLIMIT_NOFILE)");
    hard.min(hull_images::bundle::NOFILE_LIMIT)
}

#[test]
fn pulled_image_runs_with_config() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let registry = Registry::start();
    let reference = pull_app_image(&imaged, &registry);
    let hull = Runtime::hull();

    let bundle = BundleDir::create(&imaged, "app-plain", &reference, &[]);
    assert!(bundle.dir.join("config.json").is_file());
    assert!(bundle.rootfs().join("bin/busybox").is_file());
    let output = bundle.run(&hull, &unique_id("imaged-run"));
    output.expect_success();
    assert_eq!(single(&output, "uid"), "2000 gid=2000 groups=2000 3000");
    assert_eq!(single(&output, "pwd"), "/srv/work");
    assert_eq!(single(&output, "args"), "zero|one two");
    assert_eq!(
        single(&output, "nofile"),
        hard_nofile_limit().to_string(),
        "{output}"
    );
    let env = env_lines(&output);
    assert!(env.contains(&"IMAGE_VAR=from-image"), "{env:?}");
    assert!(env.contains(&"HOME=/home/app"), "{env:?}");
    assert!(
        env.contains(&"PATH=/usr/sbin:/usr/bin:/sbin:/bin"),
        "{env:?}"
    );

    // Every option of bundle create replaces what the image sets.
    let overridden = BundleDir::create_with_command(
        &imaged,
        "app-overridden",
        &reference,
        &[
            "--id",
            "overridden-id",
            "--entrypoint",
            "/bin/sh",
            "--entrypoint",
            "-c",
            "-e",
            "IMAGE_VAR=from-hullctl",
            "-e",
            "EXTRA=1",
            "-u",
            "1000:29",
            "-w",
            "/tmp",
        ],
        &[IMAGE_SCRIPT, "first", "second"],
    );
    let record = std::fs::read_to_string(overridden.dir.join("hull-bundle.json")).unwrap();
    assert!(record.contains("\"overridden-id\""), "{record}");
    assert!(imaged.root().join("rootfs/overridden-id").is_dir());
    let output = overridden.run(&hull, &unique_id("imaged-run"));
    output.expect_success();
    // The busybox fixture lists hulluser in groups 10, 29 and 1001.
    assert_eq!(single(&output, "uid"), "1000 gid=29 groups=29 10 1001");
    assert_eq!(single(&output, "pwd"), "/tmp");
    assert_eq!(single(&output, "args"), "first|second");
    let env = env_lines(&output);
    assert!(env.contains(&"IMAGE_VAR=from-hullctl"), "{env:?}");
    assert!(env.contains(&"EXTRA=1"), "{env:?}");
    assert!(env.contains(&"HOME=/home/hulluser"), "{env:?}");

    // The container's writes land in the writable layer, not the image.
    let writer = BundleDir::create_with_command(
        &imaged,
        "app-writer",
        &reference,
        &["-u", "0"],
        &["echo written > /srv/work/file; cat /srv/work/file"],
    );
    let output = writer.run(&hull, &unique_id("imaged-run"));
    output.expect_success();
    assert_eq!(output.stdout, "written\n", "{output}");
    assert!(imaged
        .root()
        .join("rootfs/app-writer/upper/srv/work/file")
        .is_file());

    for bundle in [&bundle, &overridden, &writer] {
        let removed = bundle.remove();
        assert!(removed.success(), "{removed}");
        assert!(!bundle.dir.exists(), "{} left behind", bundle.dir.display());
    }
    let mounts = host::mounts_mentioning(imaged.dir.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let rootfs_dirs: Vec<_> = std::fs::read_dir(imaged.root().join("rootfs"))
        .unwrap()
        .collect();
    assert!(rootfs_dirs.is_empty(), "rootfs dirs left: {rootfs_dirs:?}");

    imaged.hullctl_ok(&["rmi", &reference]);
    let gc = imaged.hullctl_ok(&["gc"]);
    assert!(gc.stdout.contains(", 1 snapshot, "), "{gc}");
    assert!(!gc.stdout.starts_with("Removed 0 blobs"), "{gc}");
    let snapshots: Vec<_> = std::fs::read_dir(imaged.root().join("snapshots"))
        .unwrap()
        .collect();
    assert!(snapshots.is_empty(), "snapshots left: {snapshots:?}");
}

/// A leased image keeps its layers through `rmi` and `gc` until its bundle
/// is removed.
#[test]
fn bundle_keeps_layers_until_rm() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let registry = Registry::start();
    let reference = pull_app_image(&imaged, &registry);

    let bundle = BundleDir::create(&imaged, "app-leased", &reference, &[]);
    imaged.hullctl_ok(&["rmi", &reference]);
    let gc = imaged.hullctl_ok(&["gc"]);
    assert!(gc.stdout.contains(", 0 snapshots, "), "{gc}");
    assert!(bundle.rootfs().join("bin/busybox").is_file());

    let removed = bundle.remove();
    assert!(removed.success(), "{removed}");
    let gc = imaged.hullctl_ok(&["gc"]);
    assert!(gc.stdout.contains(", 1 snapshot, "), "{gc}");
}

#[test]
fn bundle_create_errors() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let registry = Registry::start();
    let reference = pull_app_image(&imaged, &registry);

    let absent = format!("{}/test/absent:1", registry.host());
    let not_pulled = BundleDir::new(&imaged, "not-pulled");
    let output = not_pulled.try_create(&absent, &[], &[]);
    expect_one_error(&output, "hullctl pull");
    assert!(
        !not_pulled.dir.exists(),
        "a failed create left the directory"
    );

    let first = BundleDir::create(&imaged, "first", &reference, &[]);
    let output = first.try_create(&reference, &[], &[]);
    expect_one_error(&output, "already a bundle");

    let same_id = BundleDir::new(&imaged, "same-id");
    let output = same_id.try_create(&reference, &["--id", "first"], &[]);
    expect_one_error(&output, "in use");
    assert!(!same_id.dir.exists(), "a failed create left the directory");

    let invalid = BundleDir::new(&imaged, "invalid-id");
    let output = invalid.try_create(&reference, &["--id", "../up"], &[]);
    expect_one_error(&output, "invalid container id");

    let not_bundle = imaged.dir.path().join("plain");
    std::fs::create_dir(&not_bundle).unwrap();
    let output = imaged.hullctl(&["bundle", "rm", &not_bundle.display().to_string()]);
    expect_one_error(&output, "not a bundle");
    assert!(
        not_bundle.is_dir(),
        "bundle rm removed a directory it did not make"
    );

    // Only `first` holds a rootfs: the failed creates released theirs.
    let leases: Vec<String> = std::fs::read_dir(imaged.root().join("rootfs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leases, vec![String::from("first")]);
    let mounts = host::mounts_mentioning(imaged.dir.path());
    assert_eq!(mounts.len(), 1, "{mounts:?}");
}

#[track_caller]
fn expect_one_error(output: &Output, expected: &str) {
    assert_eq!(output.code, Some(1), "{output}");
    let lines = output.stderr_lines();
    assert_eq!(lines.len(), 1, "{output}");
    assert!(lines[0].starts_with("hullctl: "), "{output}");
    assert!(lines[0].contains(expected), "{output}");
}
