//! A private hullctl store and run root per test.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use hull_integration::{hullctl_binary, Output};
use serde_json::Value;

/// hullctl with `HULL_ROOT` and `HULL_RUN_ROOT` in a temporary directory.
/// Dropping it removes every network that the test left, so the host
/// keeps no bridge or rule.
pub struct Hullctl {
    pub dir: tempfile::TempDir,
}

impl Hullctl {
    pub fn new() -> Hullctl {
        Hullctl {
            dir: tempfile::tempdir().expect("failed to create a temporary directory"),
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
}

impl Drop for Hullctl {
    fn drop(&mut self) {
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
