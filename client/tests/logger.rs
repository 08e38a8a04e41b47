//! Runs the real `hullctl logger` with fds 3, 4 and 5 set up as a shim
//! sets them up for a `binary://` logger, and checks the json-file log it
//! writes, its exit command and its stop on SIGTERM.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const HULLCTL: &str = env!("CARGO_BIN_EXE_hullctl");

/// A logger started like a shim starts one, with the other ends of its
/// streams.
struct Logger {
    child: Child,
    stdout: Option<std::fs::File>,
    stderr: Option<std::fs::File>,
}

impl Logger {
    /// Starts `hullctl logger LOG ARGS...` with the read end of a stdout
    /// pipe (or `stdout_source` when given) as fd 3, a stderr pipe as fd 4
    /// and a ready pipe as fd 5, and waits until the logger closes fd 5.
    fn start(log: &Path, args: &[&str], stdout_source: Option<OwnedFd>) -> Logger {
        let (stdout_read, stdout_write) = match stdout_source {
            Some(source) => (source, None),
            None => {
                let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
                (read, Some(write))
            }
        };
        let (stderr_read, stderr_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (ready_read, ready_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();

        let mut command = Command::new(HULLCTL);
        command
            .arg("logger")
            .arg(log)
            .args(args)
            .env_clear()
            .env("CONTAINER_ID", "test")
            .env("CONTAINER_NAMESPACE", "default")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let fds = [
            stdout_read.as_raw_fd(),
            stderr_read.as_raw_fd(),
            ready_write.as_raw_fd(),
        ];
        // SAFETY: the closure runs in the forked child before exec and
        // calls only fcntl and dup2, which are async-signal-safe.
        unsafe {
            command.pre_exec(move || place_fds(&fds));
        }
        let child = command.spawn().expect("failed to start hullctl logger");
        drop((stdout_read, stderr_read, ready_write));

        // The logger closes fd 5 when ready, which ends this read.
        let mut ready = std::fs::File::from(ready_read);
        let mut byte = [0u8; 1];
        let n = std::io::Read::read(&mut ready, &mut byte).unwrap();
        assert_eq!(n, 0, "the logger wrote to its ready fd");
        Logger {
            child,
            stdout: stdout_write.map(std::fs::File::from),
            stderr: Some(std::fs::File::from(stderr_write)),
        }
    }

    fn write_stdout(&mut self, data: &[u8]) {
        self.stdout.as_mut().unwrap().write_all(data).unwrap();
    }

    fn write_stderr(&mut self, data: &[u8]) {
        self.stderr.as_mut().unwrap().write_all(data).unwrap();
    }

    fn close(&mut self) {
        self.stdout = None;
        self.stderr = None;
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the logger to exit, for at most 10 s.
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the logger did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Moves `fds` to 3, 4 and 5, through copies above 9 so that no source is
/// overwritten before it is copied.
fn place_fds(fds: &[RawFd; 3]) -> std::io::Result<()> {
    let mut high = [0; 3];
    for (slot, &fd) in high.iter_mut().zip(fds) {
        // SAFETY: F_DUPFD_CLOEXEC only creates a descriptor.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        if copy == -1 {
            return Err(std::io::Error::last_os_error());
        }
        *slot = copy;
    }
    for (target, &fd) in (3..).zip(&high) {
        // SAFETY: dup2 only replaces descriptor `target`.
        if unsafe { libc::dup2(fd, target) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Returns (log, stream) of each record in `path`.
fn records(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let time = record["time"].as_str().unwrap();
            assert!(
                chrono::DateTime::parse_from_rfc3339(time).is_ok(),
                "bad time {time}"
            );
            (
                record["log"].as_str().unwrap().to_owned(),
                record["stream"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stdout_pair(log: &str) -> (String, String) {
    (log.to_owned(), "stdout".to_owned())
}

#[test]
fn logger_writes_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c-json.log");
    let mut logger = Logger::start(&log, &[], None);
    logger.write_stdout(b"hello\nwor");
    logger.write_stderr(b"oops\n");
    logger.write_stdout(b"ld\n");
    let long = "L".repeat(40_000);
    logger.write_stdout(long.as_bytes());
    logger.write_stdout(b"\nno newline at end");
    logger.close();
    assert!(logger.wait().success());

    let records = records(&log);
    let stdout: Vec<&str> = records
        .iter()
        .filter(|(_, stream)| stream == "stdout")
        .map(|(log, _)| log.as_str())
        .collect();
    let stderr: Vec<&str> = records
        .iter()
        .filter(|(_, stream)| stream == "stderr")
        .map(|(log, _)| log.as_str())
        .collect();
    assert_eq!(stderr, ["oops\n"]);
    assert_eq!(
        stdout.concat(),
        format!("hello\nworld\n{long}\nno newline at end")
    );
    assert_eq!(stdout[0], "hello\n");
    // The 40000-byte line is split into 16 KiB partial records.
    let long_records: Vec<usize> = stdout
        .iter()
        .filter(|log| log.starts_with('L'))
        .map(|log| log.len())
        .collect();
    assert_eq!(long_records, [16384, 16384, 40_000 - 2 * 16384 + 1]);
    assert_eq!(*stdout.last().unwrap(), "no newline at end");
}

#[test]
fn logger_rotates_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c-json.log");
    let mut logger = Logger::start(&log, &["max-size", "1k", "max-file", "3"], None);
    for index in 0..100 {
        logger.write_stdout(format!("line {index}\n").as_bytes());
    }
    logger.close();
    assert!(logger.wait().success());
    let rotated = |index: u32| PathBuf::from(format!("{}.{index}", log.display()));
    assert!(rotated(1).exists());
    assert!(rotated(2).exists());
    assert!(!rotated(3).exists());
    for path in [log.clone(), rotated(1), rotated(2)] {
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 1024, "{}: {size} bytes", path.display());
    }
    assert_eq!(records(&log).last().unwrap(), &stdout_pair("line 99\n"));
}

#[test]
fn exit_command_runs_after_output_ends() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c-json.log");
    let started = dir.path().join("started");
    let finished = dir.path().join("finished");
    let script = format!(
        "cut -d' ' -f6 /proc/$$/stat > {started}.tmp; mv {started}.tmp {started}; \
         sleep 1; echo \"$1 $CONTAINER_ID\" > {finished}",
        started = started.display(),
        finished = finished.display()
    );
    let mut logger = Logger::start(
        &log,
        &[
            "exit-arg", "/bin/sh", "exit-arg", "-c", "exit-arg", &script, "exit-arg", "sh",
            "exit-arg", "--root",
        ],
        None,
    );

    logger.write_stdout(b"last words\n");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !started.exists(),
        "the exit command ran before the output ended"
    );
    logger.close();
    assert!(logger.wait().success());

    // The logger exits without waiting for the command.
    assert!(!finished.exists(), "the logger waited for the exit command");
    wait_for_file(&started);
    let session: i32 = std::fs::read_to_string(&started)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(session, nix::unistd::getsid(None).unwrap().as_raw());
    assert_ne!(session, logger.child.id() as i32);
    wait_for_file(&finished);
    assert_eq!(std::fs::read_to_string(&finished).unwrap(), "--root test\n");
    assert_eq!(records(&log), [stdout_pair("last words\n")]);
}

#[test]
fn sigterm_drains_readable_output() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c-json.log");
    let ran = dir.path().join("ran");
    let script = format!("touch {}", ran.display());
    let mut logger = Logger::start(
        &log,
        &["exit-arg", "/bin/sh", "exit-arg", "-c", "exit-arg", &script],
        None,
    );

    logger.write_stdout(b"before\n");
    // Stop the logger so that the next output is still in the pipes when
    // SIGTERM arrives.
    logger.signal(Signal::SIGSTOP);
    logger.write_stdout(b"queued line\nprompt $ ");
    logger.write_stderr(b"queued error\n");
    logger.signal(Signal::SIGTERM);
    logger.signal(Signal::SIGCONT);
    // The write ends stay open: the logger must stop on the signal alone.
    let status = logger.wait();
    assert!(status.success(), "{status}");

    let records = records(&log);
    let stdout: String = records
        .iter()
        .filter(|(_, stream)| stream == "stdout")
        .map(|(log, _)| log.as_str())
        .collect();
    assert_eq!(stdout, "before\nqueued line\nprompt $ ");
    assert!(records.contains(&("queued error\n".to_owned(), "stderr".to_owned())));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!ran.exists(), "the exit command ran after SIGTERM");
}

#[test]
fn partial_line_written_after_delay() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c-json.log");
    let mut logger = Logger::start(&log, &[], None);
    logger.write_stdout(b"/ # ");
    // A prompt without a newline reaches the log while the stream stays
    // open, so `logs -f` shows it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while records(&log).is_empty() {
        assert!(Instant::now() < deadline, "the prompt was not written");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(records(&log), [stdout_pair("/ # ")]);
    logger.write_stdout(b"ls\n");
    logger.close();
    assert!(logger.wait().success());
    assert_eq!(records(&log), [stdout_pair("/ # "), stdout_pair("ls\n")]);
}

#[test]
fn pty_master_output_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c-json.log");
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut logger = Logger::start(&log, &[], Some(pty.master));
    let mut slave = std::fs::File::from(pty.slave);
    slave.write_all(b"from the terminal\n").unwrap();
    // Closing the last slave descriptor makes reads of the master fail
    // with EIO, which ends the output.
    drop(slave);
    logger.close();
    assert!(logger.wait().success());
    // The terminal turns "\n" into "\r\n".
    assert_eq!(records(&log), [stdout_pair("from the terminal\r\n")]);
}

#[test]
fn logger_without_fds_fails() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c-json.log");
    let output = Command::new(HULLCTL)
        .arg("logger")
        .arg(&log)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("file descriptor 3 is not open"), "{stderr}");
    assert!(!log.exists());
}

#[test]
fn logger_rejects_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c-json.log");
    let output = Command::new(HULLCTL)
        .arg("logger")
        .arg(&log)
        .args(["max-size", "lots"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid max-size \"lots\""), "{stderr}");
}
