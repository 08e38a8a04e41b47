//! containerd 1.6 with hull's shim (`io.containerd.hull.v2`): `ctr` commands
//! against a private containerd whose `PATH` starts with the directory of
//! the built `containerd-shim-hull-v2` and `hull`. Each test runs twice
//! through [`shim_test!`], once with hull as the shim's runtime binary and
//! once with runc.

use std::time::Duration;

use hull_integration::callers::BUSYBOX_IMAGE;
use hull_integration::pty::{self, PtySession};
use hull_integration::{require_root, require_tools, unique_id};

mod checkpoint;
mod events;
mod fixture;
mod logging;
mod restart;

use fixture::{Binary, Fixture};

shim_test!(shim_run_prints_and_exits, run_prints_and_exits);
shim_test!(shim_task_commands, task_commands);

fn run_prints_and_exits(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);

    let id = unique_id("shim");
    let output = fixture.run_ok(&["--rm"], &[BUSYBOX_IMAGE, &id, "echo", "hi"]);
    assert_eq!(output.stdout, "hi\n", "{output}");

    let id = unique_id("shim");
    let output = fixture.run(
        &["--rm"],
        &[BUSYBOX_IMAGE, &id, "sh", "-c", "echo err >&2; exit 3"],
    );
    assert_eq!(
        output.code,
        Some(3),
        "{output}\n{}",
        fixture.containerd.log()
    );
    assert_eq!(output.stderr, "err\n", "{output}");

    let output = fixture.ctr_ok(&["containers", "ls", "-q"]);
    assert_eq!(output.stdout, "", "run --rm left containers: {output}");
    fixture.assert_binary_used();
}

fn task_commands(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);
    let id = unique_id("shim");
    fixture.run_ok(&["-d"], &[BUSYBOX_IMAGE, &id, "sleep", "600"]);
    fixture.wait_for_status(&id, "RUNNING");
    fixture.assert_binary_used();
    fixture.assert_runtime_state(&id, "running");

    let output = fixture.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo from-exec; exit 3",
    ]);
    assert_eq!(
        output.code,
        Some(3),
        "{output}\n{}",
        fixture.containerd.log()
    );
    assert_eq!(output.stdout, "from-exec\n", "{output}");

    // ctr -t needs a terminal of its own.
    let mut exec = fixture.containerd.ctr();
    exec.args(["task", "exec", "-t", "--exec-id", "e2", &id, "sh"]);
    let mut session = PtySession::spawn(exec);
    let wait = Duration::from_secs(60);
    pty::write(&session.master, "tty; echo it-$((6*7))\n");
    let text = pty::read_until(&session.master, "it-42", wait);
    assert!(
        text.contains("/dev/pts/"),
        "{text}\n{}",
        fixture.containerd.log()
    );
    pty::write(&session.master, "exit 5\n");
    assert_eq!(session.wait(wait), Some(5), "{}", fixture.containerd.log());

    fixture.ctr_ok(&["task", "pause", &id]);
    fixture.wait_for_status(&id, "PAUSED");
    fixture.assert_runtime_state(&id, "paused");
    fixture.ctr_ok(&["task", "resume", &id]);
    fixture.wait_for_status(&id, "RUNNING");

    let output = fixture.ctr_ok(&["task", "metrics", &id]);
    assert!(output.stdout.contains("memory.usage_in_bytes"), "{output}");

    let output = fixture.ctr_ok(&["task", "ps", &id]);
    assert_eq!(
        output.stdout.lines().count(),
        2,
        "one process expected: {output}"
    );

    fixture.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    fixture.wait_for_status(&id, "STOPPED");
    let output = fixture.ctr(&["task", "kill", &id]);
    assert!(
        !output.success(),
        "killing a stopped task succeeded: {output}"
    );
    fixture.ctr_ok(&["task", "delete", &id]);
    fixture.ctr_ok(&["container", "delete", &id]);
}
