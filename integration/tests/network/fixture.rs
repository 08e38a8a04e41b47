//! A private hullctl store and run root per test, and stand-ins for
//! running containers: a network namespace and a `container.json` that
//! names it, as the container commands write them.

use std::cell::RefCell;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hull_integration::host::NetNs;
use hull_integration::{hullctl_binary, unique_id, Output};
use serde_json::{json, Value};

/// hullctl with `HULL_ROOT` and `HULL_RUN_ROOT` in a temporary directory.
/// Dropping it disconnects every container and removes every network that
/// the test left, so the host keeps no bridge, rule or namespace.
pub struct Hullctl {
    pub dir: tempfile::TempDir,
    containers: RefCell<Vec<Container>>,
    children: RefCell<Vec<Child>>,
}

/// A stand-in for a running container.
pub struct Container {
    pub id: String,
    netns: NetNs,
}

impl Container {
    pub fn netns(&self) -> PathBuf {
        self.netns.path()
    }
}

impl Hullctl {
    pub fn new() -> Hullctl {
        Hullctl {
            dir: tempfile::tempdir().expect("failed to create a temporary directory"),
            containers: RefCell::new(Vec::new()),
            children: RefCell::new(Vec::new()),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let output = Command::new(hullctl_binary())
            .args(args)
            .env("HULL_ROOT", self.root())
            .env("HULL_RUN_ROOT", self.run_root())
            .env("HULL_ADDRESS", self.dir.path().join("no-daemon.sock"))
            .stdin(Stdio::null())
            .output()
            .expect("failed to run hullctl");
        Output {
            command: format!("hullctl {}", args.join(" ")),
            code: output.status.code(),
            signal: output.status.signal(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        output.expect_success();
        output
    }

    /// Runs hullctl, expects it to fail and returns its stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        output.expect_code(1);
        output.stderr
    }

    /// Creates a network on a subnet of its own and returns its inspect
    /// JSON.
    pub fn create_network(&self, name: &str, extra: &[&str]) -> Value {
        let subnet = hull_integration::network::unique_subnet();
        let mut args = vec!["network", "create", "--subnet", &subnet];
        args.extend_from_slice(extra);
        args.push(name);
        self.ok(&args);
        self.inspect(name)
    }

    pub fn inspect(&self, name: &str) -> Value {
        let output = self.ok(&["network", "inspect", name]);
        let list: Value = serde_json::from_str(&output.stdout).expect("inspect prints JSON");
        list[0].clone()
    }

    /// Makes a container stand-in: a network namespace, the container's
    /// hosts file and a `container.json` whose `networkAttachment` names
    /// the namespace.
    pub fn container(&self, name: &str) -> usize {
        let id = unique_id("hullnet");
        let netns = NetNs::create(&id);
        let dir = self.root().join("containers").join(&id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("hosts"), "127.0.0.1\tlocalhost\n").unwrap();
        let record = json!({
            "id": id,
            "name": name,
            "networkAttachment": { "netns": netns.path(), "networks": [], "ports": [] },
        });
        fs::write(dir.join("container.json"), record.to_string()).unwrap();
        let mut containers = self.containers.borrow_mut();
        containers.push(Container { id, netns });
        containers.len() - 1
    }

    pub fn with_container<T>(&self, index: usize, f: impl FnOnce(&Container) -> T) -> T {
        f(&self.containers.borrow()[index])
    }

    pub fn hosts_file(&self, index: usize) -> PathBuf {
        let id = self.with_container(index, |c| c.id.clone());
        self.root().join("containers").join(id).join("hosts")
    }

    pub fn record(&self, index: usize) -> Value {
        let id = self.with_container(index, |c| c.id.clone());
        let path = self
            .root()
            .join("containers")
            .join(id)
            .join("container.json");
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    /// Starts busybox httpd on port 80 in a container's namespace.
    pub fn start_httpd(&self, index: usize, body: &str) {
        let www = self.dir.path().join(format!("www-{index}"));
        fs::create_dir_all(&www).unwrap();
        fs::write(www.join("index.html"), body).unwrap();
        let netns = self.with_container(index, Container::netns);
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["/bin/busybox", "httpd", "-f", "-p", "80", "-h"])
            .arg(&www)
            .spawn()
            .expect("failed to start busybox httpd");
        self.children.borrow_mut().push(child);
    }
}

impl Drop for Hullctl {
    fn drop(&mut self) {
        for child in self.children.borrow_mut().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for index in 0..self.containers.borrow().len() {
            let record = self.record(index);
            let id = self.with_container(index, |c| c.id.clone());
            let networks = record["networkAttachment"]["networks"].as_array().cloned();
            for network in networks.unwrap_or_default() {
                let name = network["network"].as_str().unwrap_or_default();
                let output = self.run(&["network", "disconnect", name, &id]);
                if !output.success() {
                    eprintln!("cleanup failed: {output}");
                }
            }
        }
        self.containers.borrow_mut().clear();
        let list = self.run(&["network", "ls", "--format", "json"]);
        let networks: Value = serde_json::from_str(&list.stdout).unwrap_or(Value::Null);
        for network in networks.as_array().cloned().unwrap_or_default() {
            let name = network["name"].as_str().unwrap_or_default();
            let output = self.run(&["network", "rm", name]);
            if !output.success() {
                eprintln!("cleanup failed: {output}");
                if let Some(bridge) = network["bridge"].as_str() {
                    let _ = Command::new("ip").args(["link", "delete", bridge]).status();
                }
            }
        }
    }
}

/// Fetches `url` with wget from the busybox fixture rootfs, in the network
/// namespace `netns`, with `hosts_file` bind-mounted on the rootfs's
/// /etc/hosts in a private mount namespace. Retries for a few seconds while
/// the server starts.
pub fn wget_in(netns: &Path, hosts_file: &Path, url: &str) -> Output {
    let rootfs = hull_integration::fixtures::busybox_rootfs();
    // Debian's busybox-static 1.35 wget crashes with SIGSEGV when given -T,
    // so timeout(1) bounds each try instead.
    let script = format!(
        "mount --bind {} {}/etc/hosts && exec chroot {} timeout 5 wget -q -O - {url}",
        hosts_file.display(),
        rootfs.display(),
        rootfs.display()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let output = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["unshare", "-m", "sh", "-c", &script])
            .output()
            .expect("failed to run nsenter");
        let output = Output {
            command: format!("wget {url} in {}", netns.display()),
            code: output.status.code(),
            signal: output.status.signal(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        if output.success() || std::time::Instant::now() > deadline {
            return output;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
