//! A private hull-imaged with its own root and socket, a loopback registry
//! holding busybox, and helpers to run hullctl against them.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hull_integration::binaries::{hullctl_binary, imaged_binary};
use hull_integration::registry::{layout_from_rootfs, Registry};
use hull_integration::{fixtures, Output};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;
use tonic::transport::Channel;

/// Repository that [`push_busybox`] pushes to.
pub const BUSYBOX_REPOSITORY: &str = "test/busybox";

/// A daemon directory: `root/` for the store, `run/imaged.sock`, and the
/// daemon's log. A daemon started here or by hullctl is stopped on drop.
pub struct Imaged {
    pub dir: TempDir,
    child: Option<Child>,
}

impl Imaged {
    /// Prepares the directories without starting the daemon; hullctl
    /// starts it on first use.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hull-imaged-test-")
            .tempdir()
            .expect("create daemon temp dir");
        Self { dir, child: None }
    }

    /// Starts hull-imaged and waits until its socket accepts connections.
    pub fn start() -> Self {
        let mut imaged = Self::new();
        imaged.spawn();
        imaged
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/imaged.sock")
    }

    pub fn auth_file(&self) -> PathBuf {
        self.dir.path().join("auth/config.json")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("imaged-test.log")
    }

    /// Starts a daemon process owned by this fixture.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(imaged_binary())
            .arg("--root")
            .arg(self.root())
            .arg("--address")
            .arg(self.socket())
            .arg("--auth-file")
            .arg(self.auth_file())
            .arg("--log-level")
            .arg("debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start hull-imaged");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            if let Some(child) = &mut self.child {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("hull-imaged exited with {status}:\n{}", self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("hull-imaged did not listen within 10 s:\n{}", self.log());
    }

    /// Returns the daemon's log: the fixture's own and the one hullctl writes.
    pub fn log(&self) -> String {
        let own = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let started = std::fs::read_to_string(self.root().join("imaged.log")).unwrap_or_default();
        format!("{own}{started}")
    }

    /// Returns the pid of the running daemon, from the store's lock file.
    pub fn daemon_pid(&self) -> Option<i32> {
        if let Some(child) = &self.child {
            return Some(child.id() as i32);
        }
        let text = std::fs::read_to_string(self.root().join("lock")).ok()?;
        text.trim().parse().ok()
    }

    /// Kills the daemon with SIGKILL and reaps it when this fixture
    /// started it.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        } else if let Some(pid) = self.daemon_pid() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            wait_gone(pid);
        }
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        } else if let Some(pid) = self.daemon_pid() {
            if kill(Pid::from_raw(pid), Signal::SIGTERM).is_ok() {
                wait_gone(pid);
            }
        }
    }

    /// Runs hullctl with this daemon's root, socket and auth file.
    pub fn hullctl(&self, args: &[&str]) -> Output {
        let output = self
            .hullctl_command(args)
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

    /// Builds a hullctl command with this daemon's root, socket and auth file.
    pub fn hullctl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(hullctl_binary());
        command
            .args(args)
            .env("HULL_ROOT", self.root())
            .env("HULL_ADDRESS", self.socket())
            .env("HULL_AUTH_FILE", self.auth_file());
        command
    }

    /// Runs hullctl and panics with its output and the daemon log unless
    /// it succeeds.
    pub fn hullctl_ok(&self, args: &[&str]) -> Output {
        let output = self.hullctl(args);
        assert_eq!(
            output.code,
            Some(0),
            "hullctl {args:?} failed: {output}\ndaemon log:\n{}",
            self.log()
        );
        output
    }

    /// Opens a gRPC channel to the daemon.
    pub async fn channel(&self) -> Channel {
        hull_proto::grpc::connect_unix(&self.socket().to_string_lossy())
            .await
            .expect("connect to hull-imaged")
    }
}

impl Drop for Imaged {
    fn drop(&mut self) {
        self.stop();
        // hullctl starts its daemon in its own session; stop it by the pid
        // it wrote to the store's lock file.
        if let Some(pid) = self.daemon_pid() {
            if kill(Pid::from_raw(pid), None).is_ok() && is_our_daemon(pid, &self.root()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                wait_gone(pid);
            }
        }
    }
}

/// True when `pid` is a hull-imaged serving `root`, so that a reused pid
/// is never signalled.
fn is_our_daemon(pid: i32, root: &Path) -> bool {
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
        if kill(Pid::from_raw(pid), None).is_err() {
            return;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes an OCI layout of the busybox fixture in `dir` and pushes it to
/// `registry` as `test/busybox:TAG`; `extra` goes to skopeo.
pub fn push_busybox(registry: &Registry, dir: &Path, tag: &str, extra: &[&str]) {
    let layout = dir.join("busybox-layout");
    layout_from_rootfs(
        fixtures::busybox_rootfs(),
        &layout,
        tag,
        &["--config.cmd=sh"],
    );
    registry.push_layout(&layout, tag, &format!("{BUSYBOX_REPOSITORY}:{tag}"), extra);
}

/// Starts a registry with busybox pushed as `test/busybox:1` and returns it with the reference.
pub fn busybox_registry(dir: &Path) -> (Registry, String) {
    let registry = Registry::start();
    push_busybox(&registry, dir, "1", &[]);
    let reference = format!("{}/{BUSYBOX_REPOSITORY}:1", registry.host());
    (registry, reference)
}

/// Runs `future` on a fresh multi-thread runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}
