//! containerd 1.6 with hull's shim (`io.containerd.hull.v2`): `ctr` commands
//! against a private containerd whose `PATH` starts with the directory of
//! the built `containerd-shim-hull-v2` and `hull`.

use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hull_integration::callers::{run_command, Containerd, BUSYBOX_IMAGE};
use hull_integration::pty::{self, PtySession};
use hull_integration::{hull_binary, require_root, require_tools, unique_id, Output};

const RUNTIME: &str = "io.containerd.hull.v2";

/// Returns the directory of the built shim and hull binaries.
fn binary_dir() -> PathBuf {
    let hull = hull_binary();
    let dir = hull.parent().unwrap().to_path_buf();
    assert!(
        dir.join("containerd-shim-hull-v2").is_file(),
        "containerd-shim-hull-v2 not found in {}: run `cargo build` first",
        dir.display()
    );
    dir
}

struct Fixture {
    containerd: Containerd,
}

impl Fixture {
    fn start() -> Fixture {
        let containerd = Containerd::start_with_path(&[binary_dir()]);
        containerd.import_busybox();
        Fixture { containerd }
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let mut command = self.containerd.ctr();
        command.args(args);
        run_command(command, Duration::from_secs(120))
    }

    /// Runs `ctr` and fails with its output and containerd's log unless it
    /// succeeds.
    fn ctr_ok(&self, args: &[&str]) -> Output {
        let output = self.ctr(args);
        assert!(
            output.success(),
            "{output}\ncontainerd log:\n{}",
            self.containerd.log()
        );
        output
    }

    fn wait_for_status(&self, id: &str, status: &str) {
        for _ in 0..100 {
            let output = self.ctr(&["task", "ls"]);
            if output
                .stdout
                .lines()
                .any(|line| line.starts_with(id) && line.contains(status))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("task {id} did not reach {status}");
    }
}

/// Removes the tasks and containers a failed test left, so that their shims
/// shut down before containerd stops.
impl Drop for Fixture {
    fn drop(&mut self) {
        let tasks = self.ctr(&["task", "ls", "-q"]);
        for id in tasks.stdout.lines() {
            let _ = self.ctr(&["task", "delete", "--force", id]);
        }
        let containers = self.ctr(&["containers", "ls", "-q"]);
        for id in containers.stdout.lines() {
            let _ = self.ctr(&["containers", "delete", id]);
        }
        let root = PathBuf::from("/run/containerd/hull").join(self.containerd.namespace());
        let _ = std::fs::remove_dir(root);
    }
}

#[test]
fn shim_run_prints_and_exits() {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start();

    let id = unique_id("shim");
    let output = fixture.ctr_ok(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        BUSYBOX_IMAGE,
        &id,
        "echo",
        "hi",
    ]);
    assert_eq!(output.stdout, "hi\n", "{output}");

    let id = unique_id("shim");
    let output = fixture.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        BUSYBOX_IMAGE,
        &id,
        "sh",
        "-c",
        "echo err >&2; exit 3",
    ]);
    assert_eq!(
        output.code,
        Some(3),
        "{output}\n{}",
        fixture.containerd.log()
    );
    assert_eq!(output.stderr, "err\n", "{output}");

    let output = fixture.ctr_ok(&["containers", "ls", "-q"]);
    assert_eq!(output.stdout, "", "run --rm left containers: {output}");
}

#[test]
fn shim_task_commands() {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start();
    let id = unique_id("shim");
    fixture.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        BUSYBOX_IMAGE,
        &id,
        "sleep",
        "600",
    ]);
    fixture.wait_for_status(&id, "RUNNING");

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

#[test]
fn shim_events_in_containerd_order() {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start();
    let mut events = fixture.containerd.ctr();
    events
        .arg("events")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut events = events.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let id = unique_id("shim");
    fixture.ctr_ok(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        BUSYBOX_IMAGE,
        &id,
        "true",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let _ = events.kill();
    let _ = events.wait();
    let mut text = String::new();
    events
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();

    let topics: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(&id) || line.contains("/tasks/"))
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|topic| topic.starts_with("/tasks/"))
        .collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "events:\n{text}"
    );
}

#[test]
fn shim_runs_runc_as_binary_name() {
    require_root!();
    require_tools!("containerd", "ctr", "umoci", "runc");
    let fixture = Fixture::start();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "BinaryName = \"runc\"\n").unwrap();
    let id = unique_id("shim");
    let output = fixture.ctr_ok(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--runtime-config-path",
        config.path().to_str().unwrap(),
        BUSYBOX_IMAGE,
        &id,
        "echo",
        "via-runc",
    ]);
    assert_eq!(output.stdout, "via-runc\n", "{output}");
    // The shim gives runc the runc shim's default state directory.
    let runc_root = PathBuf::from("/run/containerd/runc").join(fixture.containerd.namespace());
    let used_runc = runc_root.is_dir();
    let _ = std::fs::remove_dir(&runc_root);
    assert!(used_runc, "{} was not created", runc_root.display());
}
