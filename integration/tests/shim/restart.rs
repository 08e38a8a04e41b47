//! containerd and the shim restarted or killed while a container runs.

use std::path::Path;
use std::time::Duration;

use hull_integration::callers::BUSYBOX_IMAGE;
use hull_integration::{require_root, require_tools, unique_id};

use crate::fixture::{task_topics, Binary, EventWatch, Fixture};
use crate::shim_test;

shim_test!(
    shim_survives_containerd_restart,
    survives_containerd_restart
);
shim_test!(shim_killed_then_cleaned_up, killed_then_cleaned_up);
shim_test!(
    shim_fifo_output_after_containerd_restart,
    fifo_output_after_containerd_restart
);

/// A shell loop that prints `tick-N` every 100 ms.
const TICKER: &str = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.1; done";

/// Returns the pid of the shim server of container `id`, found by its
/// command line, which has no action.
fn shim_pid(id: &str) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&byte| byte == 0).collect();
        let is_shim = args
            .first()
            .is_some_and(|arg0| arg0.ends_with(b"containerd-shim-hull-v2"));
        let has_id = args.windows(2).any(|pair| pair == [b"-id", id.as_bytes()]);
        let has_action = args.iter().any(|arg| *arg == b"start" || *arg == b"delete");
        if is_shim && has_id && !has_action {
            return Some(pid);
        }
    }
    None
}

/// Returns the pid that `ctr task ls` lists for task `id`.
fn task_pid(fixture: &Fixture, id: &str) -> i32 {
    let output = fixture.ctr_ok(&["task", "ls"]);
    output
        .stdout
        .lines()
        .find(|line| line.starts_with(id))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("task {id} not listed: {output}"))
}

fn count_ticks(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with("tick-"))
        .count()
}

fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn survives_containerd_restart(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let mut fixture = Fixture::start_with(binary);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ticks.log");
    let uri = format!("file://{}", log.display());
    let id = unique_id("shim");
    fixture.run_ok(
        &["-d", "--log-uri", &uri],
        &[BUSYBOX_IMAGE, &id, "sh", "-c", TICKER],
    );
    fixture.wait_for_status(&id, "RUNNING");
    fixture.assert_runtime_state(&id, "running");
    let pid = task_pid(&fixture, &id);
    let shim = shim_pid(&id).expect("no shim server found");

    fixture.containerd.restart();
    assert!(process_exists(shim), "the shim exited with containerd");
    assert!(process_exists(pid), "the container exited with containerd");
    fixture.wait_for_status(&id, "RUNNING");
    assert_eq!(task_pid(&fixture, &id), pid);

    let before = count_ticks(&log);
    std::thread::sleep(Duration::from_secs(1));
    let after = count_ticks(&log);
    assert!(
        after > before,
        "no output after the restart: {before} lines"
    );

    // The shim reconnects to the restarted containerd to publish events.
    let events = EventWatch::start(&fixture);
    fixture.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    fixture.wait_for_status(&id, "STOPPED");
    fixture.ctr_ok(&["task", "delete", &id]);
    fixture.ctr_ok(&["container", "delete", &id]);
    let text = events.stop();
    assert_eq!(
        task_topics(&text, &id),
        ["/tasks/exit", "/tasks/delete"],
        "events after the restart:\n{text}"
    );
    for _ in 0..50 {
        if !process_exists(shim) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!process_exists(shim), "the shim did not exit after delete");
}

fn killed_then_cleaned_up(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);
    let id = unique_id("shim");
    fixture.run_ok(&["-d"], &[BUSYBOX_IMAGE, &id, "sleep", "600"]);
    fixture.wait_for_status(&id, "RUNNING");
    fixture.assert_runtime_state(&id, "running");
    let pid = task_pid(&fixture, &id);
    let shim = shim_pid(&id).expect("no shim server found");
    let namespace = fixture.containerd.namespace().to_owned();
    let bundle = fixture
        .containerd
        .state_dir()
        .join("io.containerd.runtime.v2.task")
        .join(&namespace)
        .join(&id);
    let address = std::fs::read_to_string(bundle.join("address")).unwrap();
    let socket = address.trim().trim_start_matches("unix://").to_owned();
    let cgroup = Path::new("/sys/fs/cgroup/memory")
        .join(&namespace)
        .join(&id);
    assert!(cgroup.is_dir(), "{} not found", cgroup.display());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // containerd detects that the shim's socket closed and runs the shim's delete
    // action, which kills and deletes the container.
    for _ in 0..100 {
        let tasks = fixture.ctr_ok(&["task", "ls", "-q"]);
        if !tasks.stdout.lines().any(|line| line == id) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = fixture.ctr(&["task", "delete", &id]);
    fixture.ctr_ok(&["container", "delete", &id]);

    let tasks = fixture.ctr_ok(&["task", "ls", "-q"]);
    assert!(!tasks.stdout.contains(&id), "task still listed: {tasks}");
    for _ in 0..50 {
        if !process_exists(pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!process_exists(pid), "container process {pid} still runs");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs = bundle.join("rootfs");
    assert!(
        !mounts.contains(rootfs.to_str().unwrap()),
        "{} still mounted",
        rootfs.display()
    );
    assert!(!cgroup.exists(), "{} still exists", cgroup.display());
    assert!(!Path::new(&socket).exists(), "socket {socket} left behind");
    let runtime_state = fixture.runtime_root().join(&id);
    assert!(
        !runtime_state.exists(),
        "{} still exists",
        runtime_state.display()
    );
}

/// Reads lines from `stdout` of `child` until one starts with `prefix` or
/// `timeout` passes, then kills the child. Returns the matching line.
fn read_line_with_prefix(
    mut child: std::process::Child,
    prefix: &str,
    timeout: Duration,
) -> Option<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let prefix = prefix.to_owned();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(&prefix) {
                let _ = sender.send(line);
                break;
            }
        }
    });
    let line = receiver.recv_timeout(timeout).ok();
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    line
}

fn fifo_output_after_containerd_restart(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let mut fixture = Fixture::start_with(binary);
    let id = unique_id("shim");
    // Without --log-uri the output goes to FIFOs that ctr created, which
    // have no reader until attach opens them again.
    fixture.run_ok(&["-d"], &[BUSYBOX_IMAGE, &id, "sh", "-c", TICKER]);
    fixture.wait_for_status(&id, "RUNNING");
    fixture.assert_runtime_state(&id, "running");

    fixture.containerd.restart();
    fixture.wait_for_status(&id, "RUNNING");

    let mut attach = fixture.containerd.ctr();
    attach
        .args(["task", "attach", &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let attach = attach.spawn().expect("failed to start ctr task attach");
    let line = read_line_with_prefix(attach, "tick-", Duration::from_secs(10));
    assert!(
        line.is_some(),
        "no output through the FIFO after the restart\n{}",
        fixture.containerd.log()
    );

    fixture.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    fixture.wait_for_status(&id, "STOPPED");
    fixture.ctr_ok(&["task", "delete", &id]);
    fixture.ctr_ok(&["container", "delete", &id]);
}
