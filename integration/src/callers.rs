//! Container engines that call the runtime: podman and containerd, each
//! with all of its state in a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::fixtures::busybox_rootfs;
pub use crate::output::run_command;

/// Image name of the busybox fixture in the engines' stores.
pub const BUSYBOX_IMAGE: &str = "localhost/hull-busybox:test";

/// Unmounts every mount under `dir`, deepest first, so it can be removed.
pub fn unmount_under(dir: &Path) {
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = nix::mount::umount2(point.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A podman storage and run directory of its own.
pub struct PodmanStore {
    dir: TempDir,
    cgroup_parent: String,
}

impl PodmanStore {
    /// Creates the store and imports the busybox fixture as [`BUSYBOX_IMAGE`].
    pub fn with_busybox() -> PodmanStore {
        let dir = tempfile::Builder::new()
            .prefix("hull-podman-")
            .tempdir()
            .unwrap();
        let cgroup_parent = crate::unique_id("hull-podman");
        let store = PodmanStore { dir, cgroup_parent };
        let archive = store.dir.path().join("busybox.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(busybox_rootfs())
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success(), "tar of the busybox fixture failed");
        let mut import = store.command();
        import.arg("import").arg(&archive).arg(BUSYBOX_IMAGE);
        run_command(import, Duration::from_secs(120)).expect_success();
        store
    }

    /// Returns the cgroup under which this store's containers run (`run
    /// --cgroup-parent`), removed on drop.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// Returns `podman` with the store, runroot, tmpdir, cgroupfs manager
    /// and file events logger set, so that it needs no system service.
    pub fn command(&self) -> Command {
        let path = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(path.join("root"))
            .arg("--runroot")
            .arg(path.join("runroot"))
            .arg("--tmpdir")
            .arg(path.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"]);
        cmd
    }
}

impl Drop for PodmanStore {
    fn drop(&mut self) {
        let mut cmd = self.command();
        cmd.args(["rm", "--all", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = cmd.status();
        unmount_under(self.dir.path());
        remove_dir_with_retries(self.dir.path());
        crate::host::remove_empty_cgroups(&self.cgroup_parent);
    }
}

/// A containerd daemon with its own root, state and socket, stopped on drop.
pub struct Containerd {
    dir: TempDir,
    daemon: Child,
    /// The `PATH` the daemon runs with, kept for restarts.
    path: std::ffi::OsString,
    /// The containerd namespace of this daemon's containers; the runc
    /// shim puts them in cgroups below a cgroup of that name.
    namespace: String,
}

impl Containerd {
    /// Starts containerd and waits until `ctr version` succeeds on its socket.
    pub fn start() -> Containerd {
        Containerd::start_with_path(&[])
    }

    /// Starts containerd with `dirs` in front of its `PATH`, where it looks
    /// for shim binaries and the shims look for runtimes.
    pub fn start_with_path(dirs: &[PathBuf]) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("hull-containerd-")
            .tempdir()
            .unwrap();
        let path = dir.path();
        // The CRI plugin is not needed and would set up networking.
        let config = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n",
            root = path.join("root").display(),
            state = path.join("state").display(),
            sock = path.join("containerd.sock").display(),
        );
        fs::write(path.join("config.toml"), config).unwrap();
        let mut path_value = std::ffi::OsString::new();
        for dir in dirs {
            path_value.push(dir);
            path_value.push(":");
        }
        path_value.push(std::env::var_os("PATH").unwrap_or_default());
        let daemon = spawn_containerd(path, &path_value);
        let containerd = Containerd {
            dir,
            daemon,
            path: path_value,
            namespace: crate::unique_id("hulltest"),
        };
        containerd.wait_ready();
        containerd
    }

    /// Stops the daemon with SIGTERM and starts it again on the same root,
    /// state directory and sockets, as after a containerd upgrade. Shims
    /// and containers keep running.
    pub fn restart(&mut self) {
        self.stop_daemon();
        self.daemon = spawn_containerd(self.dir.path(), &self.path);
        self.wait_ready();
    }

    /// Returns containerd's state directory, which contains the task bundles
    /// in `io.containerd.runtime.v2.task/<namespace>/<id>`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut version = self.ctr();
            version.arg("version");
            if run_command(version, Duration::from_secs(10)).success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within 30 s:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM to the daemon and waits up to 10 s for it to exit,
    /// then kills it.
    fn stop_daemon(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.daemon.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.daemon.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = self.daemon.kill();
                let _ = self.daemon.wait();
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// Returns `ctr` talking to this daemon in its own namespace.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.socket())
            .args(["--namespace", &self.namespace]);
        cmd
    }

    /// Returns the namespace of this daemon's containers.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Builds an OCI image archive of the busybox fixture with umoci and
    /// imports it as [`BUSYBOX_IMAGE`].
    pub fn import_busybox(&self) {
        let work = self.dir.path().join("image");
        fs::create_dir_all(&work).unwrap();
        let layout = work.join("oci");
        let image = format!("{}:test", layout.display());
        let unpacked = work.join("bundle");
        let umoci = |args: &[&str]| {
            let mut cmd = Command::new("umoci");
            cmd.args(args);
            run_command(cmd, Duration::from_secs(120)).expect_success();
        };
        umoci(&["init", "--layout", layout.to_str().unwrap()]);
        umoci(&["new", "--image", &image]);
        umoci(&["unpack", "--image", &image, unpacked.to_str().unwrap()]);
        let mut copy = Command::new("cp");
        copy.arg("-a")
            .arg(format!("{}/.", busybox_rootfs().display()))
            .arg(unpacked.join("rootfs"));
        run_command(copy, Duration::from_secs(60)).expect_success();
        umoci(&["repack", "--image", &image, unpacked.to_str().unwrap()]);
        umoci(&["config", "--image", &image, "--config.cmd", "sh"]);
        let archive = work.join("busybox-oci.tar");
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(&layout).arg("-cf").arg(&archive).arg(".");
        run_command(tar, Duration::from_secs(60)).expect_success();
        let mut import = self.ctr();
        import
            .args(["images", "import", "--base-name", "localhost/hull-busybox"])
            .arg(&archive);
        run_command(import, Duration::from_secs(120)).expect_success();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop_daemon();
        unmount_under(self.dir.path());
        remove_dir_with_retries(self.dir.path());
        crate::host::remove_empty_cgroups(&self.namespace);
        // The shims keep each namespace's runtime state below
        // /run/containerd/<binary>/<namespace>, which outlives containerd.
        for binary in ["runc", "hull"] {
            let _ = fs::remove_dir(
                Path::new("/run/containerd")
                    .join(binary)
                    .join(&self.namespace),
            );
        }
    }
}

/// Starts containerd with the `config.toml` in `dir`, appending its output
/// to `containerd.log` there.
fn spawn_containerd(dir: &Path, path_value: &std::ffi::OsStr) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .unwrap();
    Command::new("containerd")
        .env("PATH", path_value)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("failed to start containerd")
}

/// Removes `dir`, trying again for up to a second: engine helpers such as
/// conmon may still write into it for a moment after the engine exits.
fn remove_dir_with_retries(dir: &Path) {
    for _ in 0..20 {
        if fs::remove_dir_all(dir).is_ok() || !dir.exists() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
