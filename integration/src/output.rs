//! Captured result of one runtime command.

use std::fmt;
use std::fs::{self, File};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Exit status and output of a finished command.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit code, or `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Signal that ended the process.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Returns the exit code.
    ///
    /// # Panics
    /// Panics when a signal ended the process.
    pub fn code(&self) -> i32 {
        match self.code {
            Some(code) => code,
            None => panic!("{self}\nwas ended by signal {:?}", self.signal),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Returns `self` after checking that the exit code is 0.
    ///
    /// # Panics
    /// Panics with the command, its exit status and its output otherwise.
    #[track_caller]
    pub fn expect_success(&self) -> &Output {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Returns `self` after checking that the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, Some(code), "unexpected exit status:\n{self}");
        self
    }

    /// Returns the lines of stderr that are not empty.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        match (self.code, self.signal) {
            (Some(code), _) => writeln!(f, "exit code: {code}")?,
            (None, Some(signal)) => writeln!(f, "killed by signal: {signal}")?,
            (None, None) => writeln!(f, "exit status unknown")?,
        }
        writeln!(f, "stdout:\n{}", self.stdout)?;
        write!(f, "stderr:\n{}", self.stderr)
    }
}

/// Runs `cmd` with stdout and stderr sent to `stdout_path` and
/// `stderr_path`, waits at most `timeout` and returns what it printed.
///
/// Files rather than pipes: a container that inherits the runtime's stdio
/// would keep a pipe open and make a reader wait for EOF until it exits.
///
/// # Panics
/// Panics when the command cannot start or runs past `timeout` (it is then
/// killed).
pub fn run_to_completion(
    mut cmd: Command,
    stdout_path: &Path,
    stderr_path: &Path,
    timeout: Duration,
) -> Output {
    let stdout = File::create(stdout_path).expect("failed to create the stdout file");
    let stderr = File::create(stderr_path).expect("failed to create the stderr file");
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let command = describe(&cmd);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {command}: {e}"));

    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("failed to wait for a child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command} timed out after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };

    Output {
        command,
        code: status.code(),
        signal: status.signal(),
        stdout: read_lossy(stdout_path),
        stderr: read_lossy(stderr_path),
    }
}

/// Runs `cmd` like [`run_to_completion`] with the output in a temporary
/// directory.
pub fn run_command(cmd: Command, timeout: Duration) -> Output {
    let dir = tempfile::tempdir().expect("failed to create a temporary directory");
    let stdout = dir.path().join("stdout");
    let stderr = dir.path().join("stderr");
    run_to_completion(cmd, &stdout, &stderr, timeout)
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Returns the file's text with invalid UTF-8 replaced, or "" if unreadable.
pub(crate) fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}
