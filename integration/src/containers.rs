//! A private hullctl installation for container tests: its own store root,
//! run root and hull-imaged socket in a temporary directory, and a loopback
//! registry holding the busybox fixture as an image.
//!
//! On drop it removes every container it still has (`rm -f`) and every
//! network, stops the hull-imaged that hullctl started, unmounts what is
//! left below its directory and removes the directory.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::binaries::hullctl_binary;
use crate::callers::unmount_under;
use crate::registry::{layout_from_rootfs, Registry};
use crate::{fixtures, Output};

/// Repository of the busybox image in the registry.
pub const BUSYBOX_REPOSITORY: &str = "test/busybox";

/// A hullctl with private state and a registry that has busybox.
pub struct Host {
    pub dir: TempDir,
    pub registry: Registry,
    /// `HOST:PORT/test/busybox:1`, pulled by [`Host::new`].
    pub busybox: String,
}

impl Host {
    /// Starts a registry, pushes busybox to it and pulls it into a new
    /// store.
    pub fn new() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("hull-ctl-test-")
            .tempdir()
            .expect("create the test directory");
        let registry = Registry::start();
        let layout = dir.path().join("busybox-layout");
        layout_from_rootfs(
            fixtures::busybox_rootfs(),
            &layout,
            "1",
            &["--config.cmd=sh"],
        );
        registry.push_layout(&layout, "1", &format!("{BUSYBOX_REPOSITORY}:1"), &[]);
        let busybox = format!("{}/{BUSYBOX_REPOSITORY}:1", registry.host());
        let host = Host {
            dir,
            registry,
            busybox,
        };
        host.hullctl_ok(&["pull", "-q", &host.busybox]);
        host
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("imaged.sock")
    }

    /// A hullctl command with this host's directories.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(hullctl_binary());
        command
            .args(args)
            .env("HULL_ROOT", self.root())
            .env("HULL_RUN_ROOT", self.run_root())
            .env("HULL_ADDRESS", self.socket())
            .env("HULL_AUTH_FILE", self.dir.path().join("auth.json"));
        command
    }

    /// Runs hullctl with stdin from /dev/null and returns its output.
    pub fn hullctl(&self, args: &[&str]) -> Output {
        let output = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run hullctl");
        Output {
            command: format!("hullctl {}", args.join(" ")),
            code: output.status.code(),
            signal: output.status.signal(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs hullctl and panics with its output unless it succeeds.
    pub fn hullctl_ok(&self, args: &[&str]) -> Output {
        let output = self.hullctl(args);
        assert_eq!(output.code, Some(0), "{output}");
        output
    }

    /// The record directory of container `id`.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root().join("containers").join(id)
    }

    /// The state of container `name` as `inspect` reports it, or "" when
    /// there is no such container.
    pub fn state(&self, name: &str) -> String {
        let output = self.hullctl(&["inspect", name]);
        if !output.success() {
            return String::new();
        }
        let value: serde_json::Value =
            serde_json::from_str(&output.stdout).expect("inspect prints JSON");
        value[0]["State"]["Status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits up to `timeout` for container `name` to reach `state`.
    pub fn wait_for_state(&self, name: &str, state: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.state(name) == state {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The pid of the hull-imaged that hullctl started, from the store's
    /// lock file.
    fn daemon_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.root().join("lock")).ok()?;
        text.trim().parse().ok()
    }
}

impl Default for Host {
    fn default() -> Self {
        Host::new()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let listed = self.hullctl(&["ps", "-aq"]);
        for id in listed.stdout.lines() {
            let removed = self.hullctl(&["rm", "-f", "-v", id]);
            if !removed.success() {
                eprintln!("cleanup: {removed}");
            }
        }
        // Networks a failed test left: their bridges and rules are host
        // state.
        let networks = self.hullctl(&["network", "ls", "--format", "json"]);
        let list: serde_json::Value = serde_json::from_str(&networks.stdout).unwrap_or_default();
        for network in list.as_array().into_iter().flatten() {
            let name = network["name"].as_str().unwrap_or_default();
            let removed = self.hullctl(&["network", "rm", name]);
            if !removed.success() {
                eprintln!("cleanup: {removed}");
            }
        }
        if let Some(pid) = self.daemon_pid() {
            if is_daemon_of(pid, &self.root()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                wait_gone(pid);
            }
        }
        unmount_under(self.dir.path());
    }
}

/// True when `pid` is a hull-imaged serving `root`, so that a reused pid is
/// never signalled.
fn is_daemon_of(pid: i32, root: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    args.first().is_some_and(|arg| arg.ends_with("hull-imaged"))
        && args.iter().any(|arg| Path::new(arg) == root)
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Host {
    /// Runs hullctl with `input` on its stdin, and returns its output and
    /// the raw bytes of its stdout, for commands that stream tar archives.
    pub fn hullctl_with_input(&self, args: &[&str], input: &[u8]) -> (Output, Vec<u8>) {
        use std::io::Write;

        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hullctl");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        // A separate writer keeps a full stdout pipe from blocking the
        // write to stdin.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().expect("wait for hullctl");
        let _ = writer.join();
        let text = Output {
            command: format!("hullctl {}", args.join(" ")),
            code: output.status.code(),
            signal: output.status.signal(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        (text, output.stdout)
    }
}
