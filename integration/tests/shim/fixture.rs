//! The containerd fixture of the shim tests: a private containerd 1.6 with
//! the built shim in its `PATH`, the runtime binary the shim runs, and a
//! recorder of `ctr events`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hull_integration::callers::{run_command, Containerd};
use hull_integration::{hull_binary, Output};

const RUNTIME: &str = "io.containerd.hull.v2";

/// The OCI runtime binary the shim runs for the fixture's containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `hull`, the shim's default.
    Hull,
    /// `runc`, chosen with `BinaryName = "runc"` in a runtime config file.
    Runc,
}

impl Binary {
    /// Returns the program name, which also names the shim's default
    /// runtime root `/run/containerd/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Hull => "hull",
            Binary::Runc => "runc",
        }
    }

    fn other(self) -> Binary {
        match self {
            Binary::Hull => Binary::Runc,
            Binary::Runc => Binary::Hull,
        }
    }
}

/// Defines a module named `$name` with two tests that call `$body`, a
/// `fn(Binary)`: `$name::hull` and `$name::runc`.
#[macro_export]
macro_rules! shim_test {
    ($name:ident, $body:ident) => {
        mod $name {
            use $crate::fixture::Binary;

            #[test]
            fn hull() {
                super::$body(Binary::Hull);
            }

            #[test]
            fn runc() {
                hull_integration::require_tools!("runc");
                super::$body(Binary::Runc);
            }
        }
    };
}

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
    pub binary: Binary,
    /// The runtime config file that `--runtime-config-path` names, for
    /// binaries other than hull.
    config: Option<tempfile::NamedTempFile>,
}

impl Fixture {
    /// Starts containerd with the shim running `binary`.
    pub fn start_with(binary: Binary) -> Fixture {
        let containerd = Containerd::start_with_path(&[binary_dir()]);
        containerd.import_busybox();
        let config = match binary {
            Binary::Hull => None,
            Binary::Runc => {
                let file = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(file.path(), "BinaryName = \"runc\"\n").unwrap();
                Some(file)
            }
        };
        Fixture {
            containerd,
            binary,
            config,
        }
    }

    /// Returns the `ctr run` arguments that select the shim and the
    /// fixture's binary. Later `ctr task` commands need none, because the
    /// shim stores the options at create.
    pub fn runtime_args(&self) -> Vec<&str> {
        let mut args = vec!["--runtime", RUNTIME];
        if let Some(config) = &self.config {
            args.push("--runtime-config-path");
            args.push(config.path().to_str().unwrap());
        }
        args
    }

    /// Runs `ctr run` with the fixture's runtime arguments: `flags` go
    /// before them, `rest` (image, id, command) after.
    pub fn run(&self, flags: &[&str], rest: &[&str]) -> Output {
        self.ctr(&self.run_args(flags, rest))
    }

    /// Runs `ctr run` like [`Fixture::run`] and fails unless it succeeds.
    pub fn run_ok(&self, flags: &[&str], rest: &[&str]) -> Output {
        self.ctr_ok(&self.run_args(flags, rest))
    }

    /// Returns a `ctr run` command with `flags`, the runtime arguments and
    /// `rest`, for callers that need a terminal.
    pub fn run_command(&self, flags: &[&str], rest: &[&str]) -> Command {
        let mut command = self.containerd.ctr();
        command.args(self.run_args(flags, rest));
        command
    }

    fn run_args<'a>(&'a self, flags: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend(self.runtime_args());
        args.extend_from_slice(rest);
        args
    }

    /// Returns the runtime root the shim gives `binary`:
    /// `/run/containerd/<binary>/<namespace>`.
    pub fn runtime_root_of(&self, binary: Binary) -> PathBuf {
        Path::new("/run/containerd")
            .join(binary.name())
            .join(self.containerd.namespace())
    }

    /// Returns the runtime root of the fixture's binary.
    pub fn runtime_root(&self) -> PathBuf {
        self.runtime_root_of(self.binary)
    }

    /// Fails unless the shim used the fixture's binary: its runtime root
    /// exists and the other binary's does not.
    pub fn assert_binary_used(&self) {
        let root = self.runtime_root();
        assert!(
            root.is_dir(),
            "{} not found: the shim did not run {}",
            root.display(),
            self.binary.name()
        );
        let other = self.runtime_root_of(self.binary.other());
        assert!(
            !other.exists(),
            "{} exists: the shim ran {}",
            other.display(),
            self.binary.other().name()
        );
    }

    /// Fails unless `<binary> state ID` of the fixture's binary, run on the
    /// shim's runtime root, lists container `id` as `status`. A container
    /// that the other binary created fails here, because the state files
    /// of hull and runc differ.
    pub fn assert_runtime_state(&self, id: &str, status: &str) {
        let program = match self.binary {
            Binary::Hull => hull_binary(),
            Binary::Runc => PathBuf::from("runc"),
        };
        let mut command = Command::new(program);
        command
            .arg("--root")
            .arg(self.runtime_root())
            .args(["state", id]);
        let output = run_command(command, Duration::from_secs(30));
        assert!(output.success(), "{output}");
        let expected = format!("\"status\": \"{status}\"");
        assert!(output.stdout.contains(&expected), "{output}");
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
        for binary in [Binary::Hull, Binary::Runc] {
            let _ = std::fs::remove_dir(self.runtime_root_of(binary));
        }
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
