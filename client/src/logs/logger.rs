//! `hullctl logger`: the program that a shim runs for a `binary://` stdout
//! URI (see [`super::uri`]) to write a container's output to its json-file
//! log.
//!
//! The shim passes the read ends of the container's stdout and stderr as
//! fds 3 and 4, and a pipe as fd 5, which the logger closes once the log is
//! open. For a terminal, fd 3 carries the terminal's output and fd 4 is
//! empty. A pty master on fd 3 works too, and its output ends with EIO. The
//! logger copies until both streams end. Then it starts the exit command,
//! if any, in a new session without waiting for it, and exits.
//!
//! It starts once per container, so it stays small: one thread, poll(2) on
//! both streams and a signalfd, and no async runtime. On SIGTERM or SIGINT
//! it copies what is readable at that moment, writes it, and exits without
//! running the exit command: the shim sends SIGTERM only from Delete, when
//! the container has exited but something still holds its output open.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::record::Stream;
use super::uri::LoggerConfig;
use super::writer::{JsonFileWriter, LineBuffer};

/// Size of each read from a stream.
const READ_SIZE: usize = 64 * 1024;

/// Bytes read from each stream after SIGTERM at most, so that a container
/// that keeps writing cannot hold the logger forever.
const STOP_DRAIN_LIMIT: usize = 4 * 1024 * 1024;

/// Runs the logger with the arguments after `hullctl logger`.
pub fn main(log_path: &Path, args: &[String]) -> ExitCode {
    let result =
        LoggerConfig::from_args(log_path.to_path_buf(), args).and_then(|config| run(&config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hullctl logger: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &LoggerConfig) -> anyhow::Result<()> {
    let [stdout, stderr, ready] = inherited_fds()?;
    let signals = block_stop_signals()?;
    let mut log = Log {
        writer: JsonFileWriter::open(&config.log_path, config.options)
            .with_context(|| format!("failed to open log {}", config.log_path.display()))?,
        path: &config.log_path,
        failures: 0,
    };
    // The shim creates the container's process once this pipe closes.
    drop(ready);
    let ending = copy_output([stdout, stderr], &signals, &mut log)?;
    if log.failures > 1 {
        eprintln!(
            "hullctl logger: {} writes to {} failed",
            log.failures,
            config.log_path.display()
        );
    }
    if ending == Ending::Output && !config.exit_command.is_empty() {
        run_detached(&config.exit_command)?;
    }
    Ok(())
}

/// Takes fds 3, 4 and 5 from the shim, closed on exec so that the exit
/// command does not inherit them, with the streams non-blocking.
fn inherited_fds() -> anyhow::Result<[OwnedFd; 3]> {
    let take = |fd: RawFd| -> anyhow::Result<OwnedFd> {
        // SAFETY: F_GETFD only reads the flags of descriptor `fd`.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            bail!(
                "file descriptor {fd} is not open: hullctl logger runs as a shim's \
                 binary:// logger, which passes stdout as fd 3, stderr as fd 4 and a \
                 ready pipe as fd 5"
            );
        }
        // SAFETY: the descriptor is open, and nothing else in this process
        // uses it: the shim placed it there for the logger before exec.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        Ok(owned)
    };
    let fds = [take(3)?, take(4)?, take(5)?];
    for stream in &fds[..2] {
        let flags = OFlag::from_bits_truncate(fcntl(stream, FcntlArg::F_GETFL)?);
        fcntl(stream, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    }
    Ok(fds)
}

/// Blocks SIGTERM and SIGINT and returns a signalfd that reports them, so
/// that poll(2) waits for a stop request beside the output.
fn block_stop_signals() -> anyhow::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block().context("failed to block SIGTERM")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("failed to create a signalfd")
}

/// The log and a count of failed writes, of which only the first is
/// reported.
struct Log<'a> {
    writer: JsonFileWriter,
    path: &'a Path,
    failures: u64,
}

impl Log<'_> {
    fn push(&mut self, line: &mut LineBuffer, data: &[u8]) {
        let result = line.push(data, &mut self.writer);
        self.check(result);
    }

    fn flush_partial(&mut self, line: &mut LineBuffer, at_end: bool) {
        let result = line.flush_partial(&mut self.writer, at_end);
        self.check(result);
    }

    fn flush(&mut self) {
        let result = self.writer.flush();
        self.check(result);
    }

    fn check(&mut self, result: std::io::Result<()>) {
        if let Err(error) = result {
            self.failures += 1;
            if self.failures == 1 {
                eprintln!(
                    "hullctl logger: failed to write {}: {error}; output is dropped \
                     until writes succeed again",
                    self.path.display()
                );
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// Both streams reached their end.
    Output,
    /// SIGTERM or SIGINT arrived.
    Signal,
}

enum ReadOutcome {
    Data(usize),
    End,
    WouldBlock,
}

/// Copies both streams into the log until they end or a stop signal
/// arrives, writing the records of each round of reads at once.
fn copy_output(sources: [OwnedFd; 2], signals: &SignalFd, log: &mut Log) -> anyhow::Result<Ending> {
    let mut sources = sources.map(Some);
    let mut lines = [
        LineBuffer::new(Stream::Stdout),
        LineBuffer::new(Stream::Stderr),
    ];
    let mut buffer = vec![0u8; READ_SIZE];
    while sources.iter().any(Option::is_some) {
        let timeout = match lines.iter().filter_map(LineBuffer::deadline).min() {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let (ready, stop) = match wait_readable(&sources, signals, timeout) {
            Ok(result) => result,
            Err(Errno::EINTR) => continue,
            Err(error) => return Err(error).context("failed to poll the container's output"),
        };
        for index in ready {
            let Some(source) = &sources[index] else {
                continue;
            };
            match read_once(source, &mut buffer) {
                ReadOutcome::Data(n) => log.push(&mut lines[index], &buffer[..n]),
                ReadOutcome::End => {
                    log.flush_partial(&mut lines[index], true);
                    sources[index] = None;
                }
                ReadOutcome::WouldBlock => {}
            }
        }
        if stop {
            drain(&sources, &mut lines, &mut buffer, log);
            return Ok(Ending::Signal);
        }
        let now = Instant::now();
        for line in &mut lines {
            if line.deadline().is_some_and(|deadline| deadline <= now) {
                log.flush_partial(line, false);
            }
        }
        log.flush();
    }
    log.flush();
    Ok(Ending::Output)
}

/// Polls the open streams and the signalfd. Returns the indices of the
/// streams with data or an end to read, and whether a stop signal came.
fn wait_readable(
    sources: &[Option<OwnedFd>; 2],
    signals: &SignalFd,
    timeout: PollTimeout,
) -> nix::Result<(Vec<usize>, bool)> {
    let mut indices = Vec::with_capacity(2);
    let mut fds = Vec::with_capacity(3);
    for (index, source) in sources.iter().enumerate() {
        if let Some(source) = source {
            indices.push(index);
            fds.push(PollFd::new(source.as_fd(), PollFlags::POLLIN));
        }
    }
    fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
    poll(&mut fds, timeout)?;
    let is_ready = |fd: &PollFd| fd.revents().is_some_and(|events| !events.is_empty());
    let ready = indices
        .into_iter()
        .zip(&fds)
        .filter(|(_, fd)| is_ready(fd))
        .map(|(index, _)| index)
        .collect();
    Ok((ready, is_ready(fds.last().expect("the signalfd is polled"))))
}

/// Copies what the streams hold now, up to [`STOP_DRAIN_LIMIT`] each, and
/// writes every held byte.
fn drain(
    sources: &[Option<OwnedFd>; 2],
    lines: &mut [LineBuffer; 2],
    buffer: &mut [u8],
    log: &mut Log,
) {
    for (source, line) in sources.iter().zip(lines.iter_mut()) {
        let Some(source) = source else {
            continue;
        };
        let mut copied = 0;
        while copied < STOP_DRAIN_LIMIT {
            let ReadOutcome::Data(n) = read_once(source, buffer) else {
                break;
            };
            log.push(line, &buffer[..n]);
            copied += n;
        }
    }
    for line in lines.iter_mut() {
        log.flush_partial(line, true);
    }
    log.flush();
}

fn read_once(source: &OwnedFd, buffer: &mut [u8]) -> ReadOutcome {
    loop {
        return match nix::unistd::read(source, buffer) {
            Ok(0) => ReadOutcome::End,
            Ok(n) => ReadOutcome::Data(n),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => ReadOutcome::WouldBlock,
            // A pty master fails with EIO once the last holder of the
            // terminal has closed it, which ends its output.
            Err(Errno::EIO) => ReadOutcome::End,
            Err(error) => {
                eprintln!(
                    "hullctl logger: failed to read fd {}: {error}; treating it as ended",
                    source.as_raw_fd()
                );
                ReadOutcome::End
            }
        };
    }
}

/// Starts `command` in a new session with stdin, stdout and stderr on
/// /dev/null, through a double fork so that it is not the logger's child,
/// and returns once it has been executed.
fn run_detached(command: &[String]) -> anyhow::Result<()> {
    let program = &command[0];
    let argv = command
        .iter()
        .map(|arg| CString::new(arg.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!("invalid exit command {program:?}: an argument contains a NUL byte")
        })?;
    let mut argv_pointers: Vec<*const libc::c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
    argv_pointers.push(std::ptr::null());
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("failed to open /dev/null")?;
    let (error_read, error_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).context("failed to create a pipe")?;
    // SAFETY: an all-zero sigset_t is valid storage for sigemptyset.
    let mut no_signals: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigemptyset writes the set that the pointer refers to.
    unsafe { libc::sigemptyset(&mut no_signals) };

    // SAFETY: the logger runs one thread, and the child calls only
    // async-signal-safe functions on memory prepared before the fork.
    let child = unsafe { libc::fork() };
    if child == -1 {
        return Err(std::io::Error::last_os_error()).context("failed to fork for the exit command");
    }
    if child == 0 {
        // SAFETY: this is the forked child, and every pointer refers to
        // memory that stays valid until exec or _exit.
        unsafe {
            exec_in_new_session(
                &argv_pointers,
                null.as_raw_fd(),
                error_write.as_raw_fd(),
                &no_signals,
            )
        }
    }
    drop(error_write);
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
    status.context("failed to wait for the exit command's first fork")?;
    // The pipe closes without data when exec succeeds.
    let mut errno = [0u8; 4];
    match nix::unistd::read(&error_read, &mut errno) {
        Ok(4) => {
            let error = std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
            bail!("failed to run exit command {program}: {error}")
        }
        _ => Ok(()),
    }
}

/// Runs in the first child: starts a session, forks the process that
/// executes `argv` and exits, so that the command is reparented to the
/// subreaper or init. A failure's errno goes to `error_pipe`.
///
/// # Safety
/// Call only in a child just forked from a single-threaded process.
/// `argv` must end with a null pointer.
unsafe fn exec_in_new_session(
    argv: &[*const libc::c_char],
    null: RawFd,
    error_pipe: RawFd,
    no_signals: &libc::sigset_t,
) -> ! {
    let report = || {
        let errno = (*libc::__errno_location()).to_ne_bytes();
        libc::write(error_pipe, errno.as_ptr().cast(), errno.len());
    };
    libc::setsid();
    match libc::fork() {
        -1 => {
            report();
            libc::_exit(1)
        }
        0 => {
            for target in 0..3 {
                libc::dup2(null, target);
            }
            libc::sigprocmask(libc::SIG_SETMASK, no_signals, std::ptr::null_mut());
            libc::execvp(argv[0], argv.as_ptr());
            report();
            libc::_exit(127)
        }
        _ => libc::_exit(0),
    }
}
