//! Bundles that `hull_images::bundle::generate` makes from an OCI image
//! config, run by the built `hull` and by runc.
//!
//! The image comes from umoci (the busybox fixture plus a user `app`) and is
//! unpacked with `umoci unpack`. The tests need root, umoci and runc.

mod fixture;

use hull_images::bundle::{default_seccomp, BundleOptions};
use hull_integration::output::Output;
use hull_integration::{fixtures, require_root, require_tools};
use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};

use fixture::Fixture;

/// Returns the values of the `key=...` lines a container printed.
fn values<'a>(output: &'a Output, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    output
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .collect()
}

fn single<'a>(output: &'a Output, key: &str) -> &'a str {
    let found = values(output, key);
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

#[test]
fn image_config_honoured_by_hull() {
    require_root!();
    require_tools!("umoci");
    let fixture = Fixture::new();
    let spec = fixture.generate(&fixture::options());

    let output = fixture.run(&spec, false);
    output.expect_success();
    assert_eq!(single(&output, "uid"), "2000 gid=2000 groups=2000 3000");
    assert_eq!(single(&output, "pwd"), "/srv/work");
    let nofile = fixture::options().nofile_limit.to_string();
    assert_eq!(single(&output, "nofile"), nofile);
    assert_eq!(single(&output, "args"), "zero|one two");
    let env = env_lines(&output);
    assert!(env.contains(&"IMAGE_VAR=from-image"), "{env:?}");
    assert!(env.contains(&"HOME=/home/app"), "{env:?}");
    assert!(env.contains(&"HOSTNAME=hull"), "{env:?}");
    assert!(
        env.contains(&"PATH=/usr/sbin:/usr/bin:/sbin:/bin"),
        "{env:?}"
    );
}

#[test]
fn runc_accepts_same_bundle() {
    require_root!();
    require_tools!("umoci", "runc");
    let fixture = Fixture::new();
    let spec = fixture.generate(&fixture::options());

    let hull = fixture.run(&spec, false);
    let runc = fixture.run(&spec, true);
    hull.expect_success();
    runc.expect_success();
    assert_eq!(
        hull.stdout, runc.stdout,
        "hull and runc printed different output"
    );
    assert_eq!(single(&runc, "uid"), "2000 gid=2000 groups=2000 3000");
}

#[test]
fn overrides_honoured() {
    require_root!();
    require_tools!("umoci");
    let fixture = Fixture::new();
    let opts = BundleOptions {
        args_override: vec![
            hull_integration::image::IMAGE_SCRIPT.to_owned(),
            "first".to_owned(),
            "second".to_owned(),
        ],
        env_extra: vec!["IMAGE_VAR=from-options".to_owned(), "EXTRA=1".to_owned()],
        user_override: Some("1000:29".to_owned()),
        workdir_override: Some("/tmp".to_owned()),
        hostname: Some("override-host".to_owned()),
        ..fixture::options()
    };
    let output = fixture.run(&fixture.generate(&opts), false);
    output.expect_success();
    // The busybox fixture lists hulluser in groups 10, 29 and 1001.
    assert_eq!(single(&output, "uid"), "1000 gid=29 groups=29 10 1001");
    assert_eq!(single(&output, "pwd"), "/tmp");
    assert_eq!(single(&output, "args"), "first|second");
    let env = env_lines(&output);
    assert!(env.contains(&"IMAGE_VAR=from-options"), "{env:?}");
    assert!(env.contains(&"EXTRA=1"), "{env:?}");
    assert!(env.contains(&"HOME=/home/hulluser"), "{env:?}");
    assert!(env.contains(&"HOSTNAME=override-host"), "{env:?}");
}

#[test]
fn entrypoint_override_drops_image_cmd() {
    require_root!();
    require_tools!("umoci");
    let fixture = Fixture::new();
    let opts = BundleOptions {
        entrypoint_override: Some(vec!["/bin/echo".to_owned()]),
        ..fixture::options()
    };
    let output = fixture.run(&fixture.generate(&opts), false);
    output.expect_success();
    assert_eq!(output.stdout, "\n", "echo got arguments:\n{output}");

    let with_args = BundleOptions {
        entrypoint_override: Some(vec!["/bin/echo".to_owned()]),
        args_override: vec!["hello".to_owned()],
        ..fixture::options()
    };
    let output = fixture.run(&fixture.generate(&with_args), false);
    output.expect_success();
    assert_eq!(output.stdout, "hello\n");
}

/// The script of the seccomp tests: each step prints `key=exit status`.
const SECCOMP_SCRIPT: &str = "unshare -m true; echo unshare=$?; \
    mount -t tmpfs none /mnt; echo mount=$?; \
    echo seccomp=$(grep '^Seccomp:' /proc/self/status | tr -d '\t' | cut -d: -f2); \
    ls / >/dev/null; echo ls=$?; \
    wget -O /dev/null http://127.0.0.1:9/; echo wget=$?";

fn seccomp_options(cap_add: &[&str]) -> BundleOptions {
    BundleOptions {
        entrypoint_override: Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]),
        args_override: vec![SECCOMP_SCRIPT.to_owned()],
        user_override: Some("0".to_owned()),
        cap_add: cap_add.iter().map(|c| c.to_string()).collect(),
        ..fixture::options()
    }
}

#[test]
fn seccomp_denies_unshare_and_mount() {
    require_root!();
    require_tools!("umoci");
    let fixture = Fixture::new();
    let output = fixture.run(&fixture.generate(&seccomp_options(&[])), false);
    output.expect_success();

    assert_ne!(single(&output, "unshare"), "0", "{output}");
    assert_ne!(single(&output, "mount"), "0", "{output}");
    assert_eq!(
        single(&output, "seccomp"),
        "2",
        "no filter installed:\n{output}"
    );
    assert_eq!(single(&output, "ls"), "0", "{output}");

    assert!(
        output
            .stderr
            .contains("unshare(0x20000): Operation not permitted"),
        "expected EPERM from unshare:\n{output}"
    );
    // busybox mount prints EPERM as "permission denied".
    assert!(
        output.stderr.contains("mount: permission denied"),
        "expected EPERM from mount:\n{output}"
    );
    // Nothing listens on port 9, so wget fails, but only after its socket
    // calls went through the filter.
    assert_ne!(single(&output, "wget"), "0", "{output}");
    assert!(
        output.stderr.contains("wget: can't connect"),
        "wget did not try to connect:\n{output}"
    );
}

/// With CAP_SYS_ADMIN the capability checks pass, so the default profile
/// alone has to stop the calls; without a profile they succeed.
#[test]
fn seccomp_alone_denies_with_sys_admin() {
    require_root!();
    require_tools!("umoci");
    let fixture = Fixture::new();
    let mut spec = fixture.generate(&seccomp_options(&["SYS_ADMIN"]));
    let linux = spec.linux_mut().as_mut().unwrap();
    linux.set_seccomp(Some(default_seccomp()));
    let filtered = fixture.run(&spec, false);
    filtered.expect_success();
    assert_ne!(single(&filtered, "unshare"), "0", "{filtered}");
    assert_ne!(single(&filtered, "mount"), "0", "{filtered}");

    spec.linux_mut().as_mut().unwrap().set_seccomp(None);
    let unfiltered = fixture.run(&spec, false);
    unfiltered.expect_success();
    assert_eq!(single(&unfiltered, "unshare"), "0", "{unfiltered}");
    assert_eq!(single(&unfiltered, "mount"), "0", "{unfiltered}");
    assert_eq!(single(&unfiltered, "seccomp"), "0", "{unfiltered}");
}

#[test]
fn runc_loads_default_seccomp() {
    require_root!();
    require_tools!("umoci", "runc");
    let fixture = Fixture::new();
    let output = fixture.run(&fixture.generate(&seccomp_options(&[])), true);
    output.expect_success();
    assert_ne!(single(&output, "unshare"), "0", "{output}");
    assert_eq!(single(&output, "seccomp"), "2", "{output}");
    assert_eq!(single(&output, "ls"), "0", "{output}");
}

#[test]
fn debian_apt_get_runs_under_seccomp() {
    require_root!();
    let config = ConfigBuilder::default()
        .cmd(vec!["apt-get".to_owned(), "--version".to_owned()])
        .build()
        .unwrap();
    let image = ImageConfigurationBuilder::default()
        .config(config)
        .build()
        .unwrap();
    let opts = BundleOptions {
        // The fixture is shared between tests.
        readonly_rootfs: true,
        ..fixture::options()
    };
    let output = fixture::run_rootfs(&image, fixtures::debian_rootfs(), &opts);
    output.expect_success();
    assert!(output.stdout.starts_with("apt "), "{output}");
}
