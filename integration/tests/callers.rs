//! Engines that drive the runtime: podman and containerd.

use std::time::Duration;

use hull_integration::callers::{run_command, Containerd, PodmanStore, BUSYBOX_IMAGE};
use hull_integration::{hull_binary, require_root, require_tools, unique_id, Output};

/// Runs `podman run --rm` of the busybox image with the runtime under test.
///
/// podman's default limits (nofile and nproc raised to the host's maximum)
/// fail with EPERM where the caller runs under lower hard limits, so the
/// limits are set explicitly. `--network none` avoids netavark.
fn podman_run(store: &PodmanStore, command: &[&str]) -> Output {
    let mut run = store.command();
    run.arg("--runtime")
        .arg(hull_binary())
        .args(["run", "--rm", "--network", "none"])
        .args(["--cgroup-parent", store.cgroup_parent()])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .arg(BUSYBOX_IMAGE)
        .args(command);
    run_command(run, Duration::from_secs(120))
}

#[test]
fn podman_run_echo() {
    require_root!();
    require_tools!("podman", "conmon");
    let store = PodmanStore::with_busybox();
    let output = podman_run(&store, &["echo", "ok"]);
    output.expect_success();
    assert_eq!(output.stdout, "ok\n", "{output}");
}

#[test]
fn podman_run_exit_code() {
    require_root!();
    require_tools!("podman", "conmon");
    let store = PodmanStore::with_busybox();
    podman_run(&store, &["sh", "-c", "exit 3"]).expect_code(3);
}

#[test]
fn containerd_ctr_run_echo() {
    require_root!();
    require_tools!("containerd", "ctr", "containerd-shim-runc-v2", "umoci");
    let containerd = Containerd::start();
    containerd.import_busybox();
    let mut run = containerd.ctr();
    run.args(["run", "--rm", "--runc-binary"])
        .arg(hull_binary())
        .args([BUSYBOX_IMAGE, &unique_id("ctr"), "echo", "ok"]);
    let output = run_command(run, Duration::from_secs(120));
    assert!(
        output.success(),
        "{output}\ncontainerd log:\n{}",
        containerd.log()
    );
    assert_eq!(output.stdout, "ok\n", "{output}");
}

#[test]
fn podman_default_seccomp_profile_applies() {
    require_root!();
    require_tools!("podman", "conmon");
    let store = PodmanStore::with_busybox();
    // podman puts its default seccomp profile in every config.json.
    let output = podman_run(&store, &["grep", "Seccomp:", "/proc/self/status"]);
    output.expect_success();
    assert_eq!(output.stdout, "Seccomp:\t2\n", "{output}");
}
