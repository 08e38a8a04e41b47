//! Engines that drive the runtime: podman and containerd.

use std::time::Duration;

use hull_integration::callers::{run_command, Containerd, PodmanStore, BUSYBOX_IMAGE};
use hull_integration::pty::{self, PtySession};
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

/// Runs `podman ARGS` with the runtime under test.
fn podman(store: &PodmanStore, args: &[&str]) -> Output {
    let mut command = store.command();
    command.arg("--runtime").arg(hull_binary()).args(args);
    run_command(command, Duration::from_secs(120))
}

#[test]
fn podman_exec_pause_top() {
    require_root!();
    require_tools!("podman", "conmon");
    let store = PodmanStore::with_busybox();
    let name = unique_id("podman");
    podman(
        &store,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "--cgroup-parent",
            store.cgroup_parent(),
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ],
    )
    .expect_success();

    let exec = podman(&store, &["exec", &name, "sh", "-c", "echo in; exit 4"]);
    exec.expect_code(4);
    assert_eq!(exec.stdout, "in\n", "{exec}");

    podman(&store, &["pause", &name]).expect_success();
    let state = podman(&store, &["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(state.stdout.trim(), "paused", "{state}");
    podman(&store, &["unpause", &name]).expect_success();
    let state = podman(&store, &["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(state.stdout.trim(), "running", "{state}");

    let top = podman(&store, &["top", &name]);
    top.expect_success();
    assert!(top.stdout.contains("sleep 600"), "{top}");

    podman(&store, &["rm", "--force", &name]).expect_success();
}

#[test]
fn podman_run_interactive_tty() {
    require_root!();
    require_tools!("podman", "conmon");
    let store = PodmanStore::with_busybox();
    let mut command = store.command();
    command
        .arg("--runtime")
        .arg(hull_binary())
        .args(["run", "-it", "--rm", "--network", "none"])
        .args(["--cgroup-parent", store.cgroup_parent()])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args([BUSYBOX_IMAGE, "sh"]);
    let mut session = PtySession::spawn(command);
    let wait = Duration::from_secs(60);
    pty::write(&session.master, "tty; echo it-$((5*5))\n");
    let text = pty::read_until(&session.master, "it-25", wait);
    assert!(text.contains("/dev/pts/"), "{text}");
    pty::write(&session.master, "exit 6\n");
    assert_eq!(session.wait(wait), Some(6));
}

#[test]
fn containerd_task_exec_pause_metrics() {
    require_root!();
    require_tools!("containerd", "ctr", "containerd-shim-runc-v2", "umoci");
    let containerd = Containerd::start();
    containerd.import_busybox();
    let id = unique_id("ctr");
    let ctr = |args: &[&str]| {
        let mut command = containerd.ctr();
        command.args(args);
        let output = run_command(command, Duration::from_secs(120));
        (output, containerd.log())
    };
    let hull = hull_binary();
    let hull = hull.to_str().unwrap();
    let (output, log) = ctr(&[
        "run",
        "-d",
        "--runc-binary",
        hull,
        BUSYBOX_IMAGE,
        &id,
        "sleep",
        "600",
    ]);
    assert!(output.success(), "{output}\n{log}");

    let (output, log) = ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo from-exec; exit 3",
    ]);
    assert_eq!(output.code, Some(3), "{output}\n{log}");
    assert_eq!(output.stdout, "from-exec\n", "{output}");

    let (output, log) = ctr(&["task", "pause", &id]);
    assert!(output.success(), "{output}\n{log}");
    let (output, _) = ctr(&["task", "ls"]);
    assert!(output.stdout.contains("PAUSED"), "{output}");
    let (output, log) = ctr(&["task", "resume", &id]);
    assert!(output.success(), "{output}\n{log}");

    let (output, log) = ctr(&["task", "metrics", &id]);
    assert!(output.success(), "{output}\n{log}");
    assert!(output.stdout.contains("memory.usage_in_bytes"), "{output}");

    let (output, log) = ctr(&["task", "ps", &id]);
    assert!(output.success(), "{output}\n{log}");

    let (output, log) = ctr(&["task", "kill", "-s", "SIGKILL", &id]);
    assert!(output.success(), "{output}\n{log}");
    for _ in 0..100 {
        let (output, _) = ctr(&["task", "ls"]);
        if output.stdout.contains("STOPPED") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (output, log) = ctr(&["task", "delete", &id]);
    assert!(output.success(), "{output}\n{log}");
    let (output, log) = ctr(&["container", "delete", &id]);
    assert!(output.success(), "{output}\n{log}");
}
