//! Logging programs named by `binary://` stdio URIs.
//!
//! The contract is the one of containerd 1.6's runc shim (`NewBinaryCmd`
//! and `newBinaryIO` in containerd's `pkg/process`). For
//! `binary:///path/to/logger?key=value`, the shim runs
//! `/path/to/logger key value` with only `CONTAINER_ID` and
//! `CONTAINER_NAMESPACE` in its environment. The logger gets the read ends
//! of the process's stdout and stderr pipes as fds 3 and 4 and the write
//! end of a pipe as fd 5. It closes fd 5 when it is ready, and the shim
//! waits for that before it creates the container process.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use crate::reaper::{ExitCode, Reaper};

/// Time a logger gets to close its wait fd.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a logger gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// URI scheme of a logging program.
pub const SCHEME: &str = "binary://";

/// A failure to start a logging program.
#[derive(Debug, thiserror::Error)]
pub enum LoggerError {
    #[error("invalid log URI {uri}: {reason}")]
    InvalidUri { uri: String, reason: &'static str },
    #[error("failed to start logger {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("logger {program} did not close its wait fd within {READY_TIMEOUT:?}")]
    NotReady { program: String },
    #[error("logger {program} exited with status {status} before it was ready")]
    Exited { program: String, status: ExitCode },
}

/// The ids a logger receives in its environment.
pub struct LoggerEnv<'a> {
    pub container_id: &'a str,
    pub namespace: &'a str,
}

/// A running logging program, a child of the shim.
pub struct Logger {
    pid: u32,
    exited: oneshot::Receiver<ExitCode>,
    /// Set once the reaper has collected the logger, after which its pid
    /// may belong to another process.
    reaped: bool,
}

/// Splits `binary:///path?k=v&k2=v2` into the program path and its
/// arguments `k v k2 v2`, with percent escapes and `+` decoded as Go's
/// `url.Query` does. A key without `=` gets an empty value, as in Go.
pub fn parse_uri(uri: &str) -> Result<(String, Vec<String>), LoggerError> {
    let invalid = |reason| LoggerError::InvalidUri {
        uri: uri.to_owned(),
        reason,
    };
    let rest = uri
        .strip_prefix(SCHEME)
        .ok_or_else(|| invalid("expected binary://"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path, false).ok_or_else(|| invalid("bad percent escape"))?;
    if !path.starts_with('/') {
        return Err(invalid("the logger path must be absolute"));
    }
    let mut args = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        args.push(percent_decode(key, true).ok_or_else(|| invalid("bad percent escape"))?);
        args.push(percent_decode(value, true).ok_or_else(|| invalid("bad percent escape"))?);
    }
    Ok((path, args))
}

fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                decoded.push(b' ');
                i += 1;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

impl Logger {
    /// Starts the logger of `uri` with `stdout` and `stderr`, the read ends
    /// of the process's output pipes, and waits until it is ready.
    pub async fn start(
        uri: &str,
        stdout: OwnedFd,
        stderr: OwnedFd,
        env: &LoggerEnv<'_>,
        reaper: &Reaper,
    ) -> Result<Logger, LoggerError> {
        let (program, args) = parse_uri(uri)?;
        let spawn_error = |source| LoggerError::Spawn {
            program: program.clone(),
            source,
        };
        let (ready_read, ready_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_error(e.into()))?;
        let mut command = Command::new(&program);
        command
            .args(&args)
            .env_clear()
            .env("CONTAINER_ID", env.container_id)
            .env("CONTAINER_NAMESPACE", env.namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let fds = [
            stdout.as_raw_fd(),
            stderr.as_raw_fd(),
            ready_write.as_raw_fd(),
        ];
        // SAFETY: the closure runs in the forked child before exec and calls
        // only fcntl and dup2, which are async-signal-safe, on descriptors
        // that stay open in the parent until spawn returns.
        unsafe {
            command.pre_exec(move || place_fds(&fds));
        }
        // The reaper collects the logger's exit, so `child` is never waited on.
        let (child, exited) = reaper.spawn(&mut command).map_err(spawn_error)?;
        let mut logger = Logger {
            pid: child.id(),
            exited,
            reaped: false,
        };
        drop(ready_write);
        drop(stdout);
        drop(stderr);

        let mut ready = pipe::Receiver::from_owned_fd(ready_read).map_err(spawn_error)?;
        let mut byte = [0u8; 1];
        tokio::select! {
            _ = ready.read(&mut byte) => Ok(logger),
            status = &mut logger.exited => Err(LoggerError::Exited {
                program,
                status: status.unwrap_or(128 + libc::SIGKILL as u32),
            }),
            _ = tokio::time::sleep(READY_TIMEOUT) => {
                logger.kill();
                Err(LoggerError::NotReady { program })
            }
        }
    }

    /// Waits until the logger exits, which it does after it has read the
    /// end of both streams.
    pub async fn wait(&mut self) {
        if !self.reaped {
            let _ = (&mut self.exited).await;
            self.reaped = true;
        }
    }

    /// Kills the logger with SIGKILL.
    pub fn kill(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }

    /// Sends SIGTERM, so the logger can flush, and SIGKILL if it still
    /// runs after [`STOP_TIMEOUT`].
    pub async fn stop(mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(STOP_TIMEOUT, self.wait())
            .await
            .is_err()
        {
            tracing::warn!(pid = self.pid, "logger ignored SIGTERM, killing it");
            self.kill();
        }
    }

    fn signal(&mut self, signal: nix::sys::signal::Signal) {
        if self.reaped {
            return;
        }
        match self.exited.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => {
                let pid = nix::unistd::Pid::from_raw(self.pid as i32);
                let _ = nix::sys::signal::kill(pid, signal);
            }
            Ok(_) | Err(oneshot::error::TryRecvError::Closed) => self.reaped = true,
        }
    }
}

/// Moves `fds` to 3, 4 and 5 in a forked child. Copies above 9 come first,
/// so no source descriptor is overwritten before it is copied.
fn place_fds(fds: &[RawFd; 3]) -> std::io::Result<()> {
    let mut high = [0; 3];
    for (slot, &fd) in high.iter_mut().zip(fds) {
        // SAFETY: fcntl with F_DUPFD_CLOEXEC only creates a descriptor.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        if copy == -1 {
            return Err(std::io::Error::last_os_error());
        }
        *slot = copy;
    }
    for (target, &fd) in (3..).zip(&high) {
        // SAFETY: dup2 only replaces descriptor `target`, and the new
        // descriptor does not have FD_CLOEXEC, so the logger inherits it.
        if unsafe { libc::dup2(fd, target) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_with_query_parsed() {
        let (program, args) =
            parse_uri("binary:///usr/bin/logger?tag=a+b&level=%2Fx&flag").unwrap();
        assert_eq!(program, "/usr/bin/logger");
        assert_eq!(args, ["tag", "a b", "level", "/x", "flag", ""]);
    }

    #[test]
    fn relative_logger_path_rejected() {
        assert!(parse_uri("binary://logger").is_err());
        assert!(parse_uri("binary:///bad%zz").is_err());
    }
}
