//! A private Debian `docker-registry` on a free loopback port, and OCI
//! layouts made with `umoci` from the rootfs fixtures, pushed into it with
//! `skopeo`.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running registry; stopped and its storage removed on drop.
pub struct Registry {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Registry {
    /// Starts an anonymous registry.
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// Starts a registry that requires basic auth for one user, checked
    /// against an htpasswd file of bcrypt hashes made by `htpasswd -B`.
    pub fn start_with_user(user: &str, password: &str) -> Self {
        let output = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("run htpasswd");
        assert!(output.status.success(), "htpasswd failed: {output:?}");
        Self::spawn(Some(String::from_utf8(output.stdout).unwrap()))
    }

    fn spawn(htpasswd: Option<String>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hull-registry-")
            .tempdir()
            .expect("registry temp dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(htpasswd) = htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, htpasswd).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: hull-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Self { child, port, dir };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "docker-registry did not listen on port {} within 20 s; its log: {}",
            self.port,
            std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the directory that contains the registry's blobs and
    /// repositories.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data/docker/registry/v2")
    }

    /// Pushes `oci:LAYOUT:TAG` to `HOST/NAME` with skopeo; `extra` goes to
    /// `skopeo copy` before the two references (`--dest-compress-format`,
    /// `--dest-creds`, `--format v2s2`...).
    pub fn push_layout(&self, layout: &Path, tag: &str, name: &str, extra: &[&str]) {
        let source = format!("oci:{}:{tag}", layout.display());
        let dest = format!("docker://{}/{name}", self.host());
        skopeo(
            &[
                &["copy", "--dest-tls-verify=false"],
                extra,
                &[&source, &dest],
            ]
            .concat(),
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs skopeo with `args` and panics with its output when it fails.
pub fn skopeo(args: &[&str]) -> String {
    let output = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs umoci with `args` and panics with its output when it fails.
pub fn umoci(args: &[&str]) {
    let output = Command::new("umoci")
        .args(args)
        .output()
        .expect("run umoci");
    assert!(
        output.status.success(),
        "umoci {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes an OCI layout at `layout` holding `TAG`, one layer with the
/// contents of `rootfs`, and the config that `configure` (arguments to
/// `umoci config`, such as `--config.cmd=sh`) sets.
pub fn layout_from_rootfs(rootfs: &Path, layout: &Path, tag: &str, configure: &[&str]) {
    let image = format!("{}:{tag}", layout.display());
    if !layout.join("index.json").exists() {
        umoci(&["init", "--layout", &layout.display().to_string()]);
    }
    umoci(&["new", "--image", &image]);
    let work = tempfile::Builder::new()
        .prefix("hull-umoci-")
        .tempdir()
        .unwrap();
    let bundle = work.path().join("bundle");
    umoci(&["unpack", "--image", &image, &bundle.display().to_string()]);
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs.display()))
        .arg(bundle.join("rootfs"))
        .status()
        .unwrap();
    assert!(status.success(), "copying {} failed", rootfs.display());
    umoci(&["repack", "--image", &image, &bundle.display().to_string()]);
    if !configure.is_empty() {
        umoci(&[&["config", "--image", &image], configure].concat());
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().unwrap().port()
}
