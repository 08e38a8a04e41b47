//! The containerd fixture of the shim tests: a private containerd 1.6 with
//! the built shim in its `PATH`, and a recorder of `ctr events`.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use hull_integration::callers::{run_command, Containerd};
use hull_integration::{hull_binary, Output};

pub const RUNTIME: &str = "io.containerd.hull.v2";

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

pub struct Fixture {
    pub containerd: Containerd,
}

impl Fixture {
    pub fn start() -> Fixture {
        let containerd = Containerd::start_with_path(&[binary_dir()]);
        containerd.import_busybox();
        Fixture { containerd }
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        let mut command = self.containerd.ctr();
        command.args(args);
        run_command(command, Duration::from_secs(120))
    }

    /// Runs `ctr` and fails with its output and containerd's log unless it
    /// succeeds.
    pub fn ctr_ok(&self, args: &[&str]) -> Output {
        let output = self.ctr(args);
        assert!(
            output.success(),
            "{output}\ncontainerd log:\n{}",
            self.containerd.log()
        );
        output
    }

    pub fn wait_for_status(&self, id: &str, status: &str) {
        let mut output = self.ctr(&["task", "ls"]);
        for _ in 0..100 {
            if output
                .stdout
                .lines()
                .any(|line| line.starts_with(id) && line.contains(status))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
            output = self.ctr(&["task", "ls"]);
        }
        panic!("task {id} did not reach {status}: {output}");
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

/// A running `ctr events`, which records every event of the fixture's
/// namespace until [`EventWatch::stop`].
pub struct EventWatch {
    child: Child,
}

impl EventWatch {
    pub fn start(fixture: &Fixture) -> EventWatch {
        let mut events = fixture.containerd.ctr();
        events
            .arg("events")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let child = events.spawn().expect("failed to start ctr events");
        // ctr events subscribes after it starts; events before that are lost.
        std::thread::sleep(Duration::from_millis(500));
        EventWatch { child }
    }

    /// Waits half a second for late events, stops `ctr events` and returns
    /// its output.
    pub fn stop(mut self) -> String {
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut text).unwrap();
        }
        text
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns the `/tasks/` topics of the events of container `id` in `text`,
/// the output of `ctr events`: each line is a timestamp of four words, the
/// namespace, the topic and the event.
pub fn task_topics<'a>(text: &'a str, id: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.contains(id))
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|topic| topic.starts_with("/tasks/"))
        .collect()
}
