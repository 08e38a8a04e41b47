//! Task events as `ctr events` shows them, and `ctr task attach`.

use std::time::Duration;

use hull_integration::callers::BUSYBOX_IMAGE;
use hull_integration::pty::{self, PtySession};
use hull_integration::{require_root, require_tools, unique_id};

use crate::fixture::{task_topics, Binary, EventWatch, Fixture};
use crate::shim_test;

shim_test!(shim_events_in_containerd_order, events_in_containerd_order);
shim_test!(shim_events_of_exec_pause_kill, events_of_exec_pause_kill);
shim_test!(shim_oom_event, oom_event);
shim_test!(shim_attach_to_detached_tty, attach_to_detached_tty);

fn events_in_containerd_order(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);
    let events = EventWatch::start(&fixture);

    let id = unique_id("shim");
    fixture.run_ok(&["--rm"], &[BUSYBOX_IMAGE, &id, "true"]);
    let text = events.stop();
    fixture.assert_binary_used();
    assert_eq!(
        task_topics(&text, &id),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "events:\n{text}"
    );
}

fn events_of_exec_pause_kill(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);
    let events = EventWatch::start(&fixture);
    let id = unique_id("shim");
    fixture.run_ok(&["-d"], &[BUSYBOX_IMAGE, &id, "sleep", "600"]);
    fixture.wait_for_status(&id, "RUNNING");
    fixture.assert_runtime_state(&id, "running");
    fixture.ctr_ok(&["task", "exec", "--exec-id", "short", &id, "true"]);
    fixture.ctr_ok(&[
        "task",
        "exec",
        "--detach",
        "--exec-id",
        "long",
        &id,
        "sleep",
        "600",
    ]);
    fixture.ctr_ok(&["task", "pause", &id]);
    fixture.ctr_ok(&["task", "resume", &id]);
    // Killing the init process kills the exec process with it, and
    // containerd expects the exec's exit before the init's.
    fixture.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    fixture.wait_for_status(&id, "STOPPED");
    fixture.ctr_ok(&["task", "delete", &id]);
    fixture.ctr_ok(&["container", "delete", &id]);
    let text = events.stop();

    assert_eq!(
        task_topics(&text, &id),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/paused",
            "/tasks/resumed",
            "/tasks/exit",
            "/tasks/exit",
            "/tasks/delete",
        ],
        "events:\n{text}"
    );
    let exit_ids: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(&id) && line.contains("/tasks/exit"))
        .map(|line| {
            if line.contains(r#""id":"short""#) {
                "short"
            } else if line.contains(r#""id":"long""#) {
                "long"
            } else {
                "init"
            }
        })
        .collect();
    assert_eq!(exit_ids, ["short", "long", "init"], "events:\n{text}");
}

fn oom_event(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);
    let events = EventWatch::start(&fixture);
    let id = unique_id("shim");
    // The shell keeps 32 MiB in a variable, over the 8 MiB limit.
    let output = fixture.run(
        &["--rm", "--memory-limit", "8388608"],
        &[
            BUSYBOX_IMAGE,
            &id,
            "sh",
            "-c",
            r#"x=$(head -c 32m /dev/zero | tr "\0" x); echo survived"#,
        ],
    );
    let text = events.stop();
    fixture.assert_binary_used();
    assert!(
        !output.stdout.contains("survived"),
        "the OOM killer did not fire: {output}"
    );
    let topics = task_topics(&text, &id);
    assert!(
        topics.contains(&"/tasks/oom"),
        "no /tasks/oom event:\n{text}\ncontainerd log:\n{}",
        fixture.containerd.log()
    );
}

fn attach_to_detached_tty(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);
    let id = unique_id("shim");
    let wait = Duration::from_secs(60);

    // ctr -t needs a terminal of its own, even with -d.
    let run = fixture.run_command(&["-d", "-t"], &[BUSYBOX_IMAGE, &id, "sh"]);
    let mut session = PtySession::spawn(run);
    assert_eq!(session.wait(wait), Some(0), "{}", fixture.containerd.log());
    fixture.wait_for_status(&id, "RUNNING");
    fixture.assert_runtime_state(&id, "running");

    let mut attach = fixture.containerd.ctr();
    attach.args(["task", "attach", &id]);
    let mut session = PtySession::spawn(attach);
    pty::write(&session.master, "echo at-$((6*7))\n");
    let text = pty::read_until(&session.master, "at-42", wait);
    assert!(text.contains("at-42"), "{text}");
    pty::write(&session.master, "exit 4\n");
    assert_eq!(session.wait(wait), Some(4), "{}", fixture.containerd.log());

    // ctr 1.6's attach deletes the task after it exits.
    for _ in 0..100 {
        let tasks = fixture.ctr_ok(&["task", "ls", "-q"]);
        if !tasks.stdout.lines().any(|line| line == id) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let tasks = fixture.ctr_ok(&["task", "ls", "-q"]);
    assert!(
        !tasks.stdout.contains(&id),
        "task left after attach: {tasks}"
    );
    fixture.ctr_ok(&["container", "delete", &id]);
}
