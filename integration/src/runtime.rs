//! Running runtime commands with a private state directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::binaries::{hull_binary, runc_binary};
use crate::bundle::Bundle;
use crate::host;
use crate::output::{read_lossy, run_command, run_to_completion, Output};

/// Time a single runtime command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A runtime binary with its own `--root` state directory.
///
/// Every container created through it is killed and force-deleted on drop,
/// also when the test panics, and the state directory is removed.
pub struct Runtime {
    name: String,
    binary: PathBuf,
    root: TempDir,
    /// Files that hold the stdout and stderr of each container and the length
    /// they had when the runtime command that started it returned.
    containers: Mutex<HashMap<String, ContainerStdio>>,
}

struct ContainerStdio {
    stdout: PathBuf,
    stderr: PathBuf,
    stdout_offset: usize,
    stderr_offset: usize,
}

impl Runtime {
    /// Creates a helper for `binary`; `name` appears in messages.
    pub fn new(name: &str, binary: PathBuf) -> Runtime {
        let root = tempfile::Builder::new()
            .prefix(&format!("hull-state-{name}-"))
            .tempdir()
            .expect("failed to create a state directory");
        Runtime {
            name: name.to_owned(),
            binary,
            root,
            containers: Mutex::new(HashMap::new()),
        }
    }

    /// Returns a helper for the runtime under test (see [`hull_binary`]).
    pub fn hull() -> Runtime {
        Runtime::new("hull", hull_binary())
    }

    /// Returns a helper for the reference runtime (see [`runc_binary`]).
    pub fn runc() -> Runtime {
        Runtime::new("runc", runc_binary())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Returns the `--root` state directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Returns the state directory of container `id`.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root().join(id)
    }

    /// Returns a command for `RUNTIME --root ROOT ARGS...` with stdin closed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(self.root()).args(args);
        cmd.stdin(Stdio::null());
        // runc writes files such as criu logs into its working directory.
        cmd.current_dir(self.root());
        cmd
    }

    /// Runs `RUNTIME --root ROOT ARGS...` and captures its output.
    pub fn exec(&self, args: &[&str]) -> Output {
        let cmd = self.command(args);
        self.exec_command(cmd, None)
    }

    /// Runs `RUNTIME ARGS...` without `--root`, for global flags.
    pub fn exec_without_root(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args).stdin(Stdio::null()).current_dir(self.root());
        self.exec_command(cmd, None)
    }

    /// Runs `cmd` with a timeout of [`COMMAND_TIMEOUT`]. With `keep`, the
    /// output goes to those two files, which stay in place.
    fn exec_command(&self, cmd: Command, keep: Option<(&Path, &Path)>) -> Output {
        match keep {
            Some((stdout, stderr)) => run_to_completion(cmd, stdout, stderr, COMMAND_TIMEOUT),
            None => run_command(cmd, COMMAND_TIMEOUT),
        }
    }

    /// Writes the bundle's config and runs `VERB... --bundle BUNDLE EXTRA... ID`
    /// (`create`, `run` or `run --detach`). The container's stdout and stderr
    /// go to files in the bundle directory, which
    /// [`Runtime::container_output`] reads.
    fn start_container(&self, verb: &[&str], id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        bundle.write();
        // Ids under test may contain `/` or `..`: keep the files in the bundle.
        let file_stem = id.replace(['/', '.'], "_");
        let stdout = bundle.path().join(format!("{file_stem}.stdout"));
        let stderr = bundle.path().join(format!("{file_stem}.stderr"));
        let bundle_path = bundle.path().to_string_lossy().into_owned();
        let mut args: Vec<&str> = verb.to_vec();
        args.extend_from_slice(&["--bundle", &bundle_path]);
        args.extend_from_slice(extra);
        args.push(id);
        let cmd = self.command(&args);
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.to_owned(),
                ContainerStdio {
                    stdout: stdout.clone(),
                    stderr: stderr.clone(),
                    stdout_offset: 0,
                    stderr_offset: 0,
                },
            );
        let output = self.exec_command(cmd, Some((&stdout, &stderr)));
        if let Some(files) = self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            files.stdout_offset = output.stdout.len();
            files.stderr_offset = output.stderr.len();
        }
        output
    }

    /// Runs `create --bundle BUNDLE [EXTRA...] ID`.
    pub fn create(&self, id: &str, bundle: &Bundle) -> Output {
        self.start_container(&["create"], id, bundle, &[])
    }

    /// Runs `create` with extra flags such as `--pid-file`.
    pub fn create_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        self.start_container(&["create"], id, bundle, extra)
    }

    /// Runs `run --bundle BUNDLE [EXTRA...] ID` in the foreground with extra
    /// flags such as `--no-pivot`.
    pub fn run_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        self.start_container(&["run"], id, bundle, extra)
    }

    /// Runs `run --bundle BUNDLE ID` in the foreground. The output contains
    /// what the runtime and the container printed, and the exit code is the
    /// container's.
    pub fn run(&self, id: &str, bundle: &Bundle) -> Output {
        self.start_container(&["run"], id, bundle, &[])
    }

    /// Runs `run --detach --bundle BUNDLE ID`.
    pub fn run_detached(&self, id: &str, bundle: &Bundle) -> Output {
        self.start_container(&["run", "--detach"], id, bundle, &[])
    }

    /// Returns what the container printed after the runtime command that
    /// created it returned: `(stdout, stderr)`.
    pub fn container_output(&self, id: &str) -> (String, String) {
        let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        let files = containers
            .get(id)
            .unwrap_or_else(|| panic!("container {id} was not started by this helper"));
        let stdout = read_lossy(&files.stdout);
        let stderr = read_lossy(&files.stderr);
        (
            stdout.get(files.stdout_offset..).unwrap_or("").to_owned(),
            stderr.get(files.stderr_offset..).unwrap_or("").to_owned(),
        )
    }

    pub fn start(&self, id: &str) -> Output {
        self.exec(&["start", id])
    }

    pub fn state(&self, id: &str) -> Output {
        self.exec(&["state", id])
    }

    /// Returns the parsed output of `state ID`.
    ///
    /// # Panics
    /// Panics when the command fails or prints invalid JSON.
    #[track_caller]
    pub fn state_json(&self, id: &str) -> Value {
        let output = self.state(id);
        output.expect_success();
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|e| panic!("state printed invalid JSON ({e}):\n{output}"))
    }

    /// Returns the `status` field of `state ID`.
    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state_json(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Polls `state ID` until the status is `status`; returns whether it got
    /// there within `timeout`.
    pub fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let output = self.state(id);
            if output.success() {
                if let Ok(state) = serde_json::from_str::<Value>(&output.stdout) {
                    if state["status"] == status {
                        return true;
                    }
                }
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.exec(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.exec(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.exec(&["delete", "--force", id])
    }

    /// Returns the parsed output of `list --format json`; runc prints `null`
    /// for no containers, which becomes an empty list.
    #[track_caller]
    pub fn list_json(&self) -> Vec<Value> {
        let output = self.exec(&["list", "--format", "json"]);
        output.expect_success();
        match serde_json::from_str::<Value>(&output.stdout) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Null) => Vec::new(),
            other => panic!("list printed no JSON array ({other:?}):\n{output}"),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
        {
            let _ = self.exec_quiet(&["kill", id, "KILL"]);
            let _ = self.exec_quiet(&["delete", "--force", id]);
            host::remove_cgroups(id);
        }
    }
}

impl Runtime {
    /// Runs a cleanup command, killing it after 10 s, and ignores how it ends.
    fn exec_quiet(&self, args: &[&str]) -> std::io::Result<()> {
        let mut child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}
