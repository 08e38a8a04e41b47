//! Calls to the OCI runtime binary (hull, runc or crun) with runc's command
//! line, each awaited through the [`Reaper`].

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::reaper::Reaper;

/// A failed runtime call.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("failed to run {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read the output of {binary} {command}: {source}")]
    Output {
        binary: PathBuf,
        command: String,
        source: std::io::Error,
    },
    #[error("{binary} {command} failed with exit status {code}: {message}")]
    Failed {
        binary: PathBuf,
        command: String,
        code: u32,
        message: String,
    },
    #[error("reaper dropped the exit status of {binary} {command}")]
    Lost { binary: PathBuf, command: String },
    #[error("invalid output of {binary} {command}: {message}")]
    InvalidOutput {
        binary: PathBuf,
        command: String,
        message: String,
    },
}

/// Standard streams for a runtime call whose children inherit them.
#[derive(Default)]
pub struct ProcessStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Options of `create` and `exec` besides the container id.
pub struct SpawnOptions<'a> {
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// The runtime binary and its global flags.
#[derive(Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    /// JSON log file (`--log`), read for the error of a failed call.
    pub log: PathBuf,
    pub systemd_cgroup: bool,
    reaper: Reaper,
}

impl Runtime {
    pub fn new(
        binary: PathBuf,
        root: PathBuf,
        log: PathBuf,
        systemd_cgroup: bool,
        reaper: Reaper,
    ) -> Runtime {
        Runtime {
            binary,
            root,
            log,
            systemd_cgroup,
            reaper,
        }
    }

    fn command(&self, args: &[OsString]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"]);
        if self.systemd_cgroup {
            command.arg("--systemd-cgroup");
        }
        command.args(args);
        command
    }

    /// Runs `hull create`. The container's init process inherits `stdio`.
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        options: &SpawnOptions<'_>,
        stdio: ProcessStdio,
    ) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["create".into(), "--bundle".into(), bundle.into()];
        push_spawn_options(&mut args, options);
        if options.no_pivot {
            args.push("--no-pivot".into());
        }
        if options.no_new_keyring {
            args.push("--no-new-keyring".into());
        }
        args.push(id.into());
        self.run_inheriting(args, stdio).await
    }

    /// Runs `hull exec --detach --process FILE`. The process inherits `stdio`.
    pub async fn exec(
        &self,
        id: &str,
        process_file: &Path,
        options: &SpawnOptions<'_>,
        stdio: ProcessStdio,
    ) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec![
            "exec".into(),
            "--detach".into(),
            "--process".into(),
            process_file.into(),
        ];
        push_spawn_options(&mut args, options);
        args.push(id.into());
        self.run_inheriting(args, stdio).await
    }

    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&["start", id], None).await.map(drop)
    }

    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError> {
        let signal = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, signal.as_str()]);
        self.run(&args, None).await.map(drop)
    }

    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.run(&args, None).await.map(drop)
    }

    pub async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&["pause", id], None).await.map(drop)
    }

    pub async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.run(&["resume", id], None).await.map(drop)
    }

    /// Runs `hull update --resources -` with the LinuxResources JSON on stdin.
    pub async fn update(&self, id: &str, resources: &[u8]) -> Result<(), RuntimeError> {
        self.run(&["update", "--resources", "-", id], Some(resources))
            .await
            .map(drop)
    }

    /// Returns the pids of the container's processes (`hull ps --format json`).
    pub async fn ps(&self, id: &str) -> Result<Vec<u32>, RuntimeError> {
        let output = self.run(&["ps", "--format", "json", id], None).await?;
        serde_json::from_slice::<Option<Vec<u32>>>(&output)
            .map(Option::unwrap_or_default)
            .map_err(|error| RuntimeError::InvalidOutput {
                binary: self.binary.clone(),
                command: "ps".into(),
                message: error.to_string(),
            })
    }

    /// Runs `hull checkpoint` with `args`, the command and its flags as
    /// [`crate::checkpoint::checkpoint_args`] builds them.
    pub async fn checkpoint(&self, id: &str, mut args: Vec<OsString>) -> Result<(), RuntimeError> {
        args.push(id.into());
        self.run_captured(args, None).await.map(drop)
    }

    /// Runs `hull restore --detach` with `args`, the command and its flags
    /// as [`crate::checkpoint::restore_args`] builds them. The restored
    /// process inherits `stdio`.
    pub async fn restore(
        &self,
        id: &str,
        mut args: Vec<OsString>,
        stdio: ProcessStdio,
    ) -> Result<(), RuntimeError> {
        args.push(id.into());
        self.run_inheriting(args, stdio).await
    }

    async fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, RuntimeError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        self.run_captured(args, stdin).await
    }

    /// Runs a command with captured output and returns its stdout.
    async fn run_captured(
        &self,
        args: Vec<OsString>,
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, RuntimeError> {
        let name = command_name(&args);
        let mut command = self.command(&args);
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (mut child, exit) =
            self.reaper
                .spawn(&mut command)
                .map_err(|source| RuntimeError::Spawn {
                    binary: self.binary.clone(),
                    source,
                })?;
        let output_error = |source| RuntimeError::Output {
            binary: self.binary.clone(),
            command: name.clone(),
            source,
        };
        let input = child.stdin.take().map(OwnedFd::from);
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        let data = stdin.unwrap_or_default().to_vec();
        let write = async move {
            if let Some(fd) = input {
                let mut sender = pipe::Sender::from_owned_fd(fd)?;
                sender.write_all(&data).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (written, out, err) = tokio::join!(write, read_all(stdout), read_all(stderr));
        written.map_err(output_error)?;
        let out = out.map_err(output_error)?;
        let err = err.map_err(output_error)?;
        let code = exit.await.map_err(|_| RuntimeError::Lost {
            binary: self.binary.clone(),
            command: name.clone(),
        })?;
        if code != 0 {
            return Err(self.failure(name, code, &err));
        }
        Ok(out)
    }

    async fn run_inheriting(
        &self,
        args: Vec<OsString>,
        stdio: ProcessStdio,
    ) -> Result<(), RuntimeError> {
        let name = command_name(&args);
        let mut command = self.command(&args);
        command
            .stdin(stdio.stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(stdio.stdout.map_or_else(Stdio::null, Stdio::from))
            .stderr(stdio.stderr.map_or_else(Stdio::null, Stdio::from));
        let (child, exit) =
            self.reaper
                .spawn(&mut command)
                .map_err(|source| RuntimeError::Spawn {
                    binary: self.binary.clone(),
                    source,
                })?;
        // Dropping the command closes the shim's copies of the stdio ends.
        drop(command);
        drop(child);
        let code = exit.await.map_err(|_| RuntimeError::Lost {
            binary: self.binary.clone(),
            command: name.clone(),
        })?;
        if code != 0 {
            return Err(self.failure(name, code, b""));
        }
        Ok(())
    }

    /// Builds the error of a failed call from its stderr, or else from the
    /// last error in the JSON log.
    fn failure(&self, command: String, code: u32, stderr: &[u8]) -> RuntimeError {
        let mut message = String::from_utf8_lossy(stderr).trim().to_owned();
        if message.is_empty() {
            message = last_logged_error(&self.log).unwrap_or_else(|| "no error output".into());
        }
        RuntimeError::Failed {
            binary: self.binary.clone(),
            command,
            code,
            message,
        }
    }
}

fn push_spawn_options(args: &mut Vec<OsString>, options: &SpawnOptions<'_>) {
    args.push("--pid-file".into());
    args.push(options.pid_file.into());
    if let Some(socket) = options.console_socket {
        args.push("--console-socket".into());
        args.push(socket.into());
    }
}

fn command_name(args: &[OsString]) -> String {
    args.first()
        .map(|arg| arg.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn read_all(fd: Option<OwnedFd>) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    if let Some(fd) = fd {
        pipe::Receiver::from_owned_fd(fd)?
            .read_to_end(&mut data)
            .await?;
    }
    Ok(data)
}

/// Returns the message of the last `"level":"error"` line of a runc-style
/// JSON log.
pub fn last_logged_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        if value.get("level")?.as_str()? != "error" {
            return None;
        }
        Some(value.get("msg")?.as_str()?.to_owned())
    })
}

/// Reads the pid the runtime wrote to `pid_file`.
pub fn read_pid_file(pid_file: &Path) -> std::io::Result<i32> {
    let text = std::fs::read_to_string(pid_file)?;
    text.trim().parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("invalid pid {:?} in {}", text.trim(), pid_file.display()),
        )
    })
}
