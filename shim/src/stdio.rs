//! Standard streams of container processes.
//!
//! containerd's client creates FIFOs for stdin, stdout and stderr and passes
//! their paths. The shim gives the runtime pipes (or, for a terminal, a
//! console socket that returns the pty master) and copies between those and
//! the FIFOs, so the client can come and go while the process runs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::logger::{self, Logger, LoggerEnv};
use crate::reaper::Reaper;
use crate::runtime::ProcessStdio;

/// Directory of the short-lived console sockets. A unix socket path has at
/// most 107 bytes, which bundle paths under containerd's state can exceed.
const CONSOLE_SOCKET_DIR: &str = "/run/hull/pty";

/// The stdio paths of a process as the client sent them.
#[derive(Clone, Debug, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The shim's side of a process's streams.
#[derive(Default)]
pub struct ProcessIo {
    /// Stops copying into the process's stdin (CloseIO).
    stdin_close: Option<oneshot::Sender<()>>,
    /// The pty master, kept for TIOCSWINSZ.
    console: Option<OwnedFd>,
    /// The stdout and stderr copies.
    copies: Vec<JoinHandle<()>>,
    /// The logging program of a `binary://` URI, which reads the output
    /// pipes itself.
    logger: Option<Logger>,
}

impl ProcessIo {
    /// Closes the process's stdin once the data already in the FIFO is
    /// copied.
    pub fn close_stdin(&mut self) {
        if let Some(close) = self.stdin_close.take() {
            let _ = close.send(());
        }
    }

    /// Sets the terminal size of a process with a terminal.
    pub fn resize(&self, width: u16, height: u16) -> std::io::Result<()> {
        let Some(console) = &self.console else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the process has no terminal",
            ));
        };
        set_window_size(console, width, height)
    }

    /// Waits until the output copies end, which happens when every holder of
    /// the write ends (the process and its children) has exited.
    pub async fn wait_output(&mut self) {
        for copy in self.copies.drain(..) {
            let _ = copy.await;
        }
        if let Some(logger) = &mut self.logger {
            logger.wait().await;
        }
    }

    /// Stops the logging program, if any, that has not exited yet.
    pub async fn stop_logger(&mut self) {
        if let Some(logger) = self.logger.take() {
            logger.stop().await;
        }
    }
}

/// Creates the pipes for a process without a terminal: returns the ends for
/// the runtime and starts the copies between the other ends and the FIFOs,
/// or the logging program of a `binary://` stdout URI.
pub async fn open_pipes(
    paths: &StdioPaths,
    env: &LoggerEnv<'_>,
    reaper: &Reaper,
) -> std::io::Result<(ProcessStdio, ProcessIo)> {
    let mut stdio = ProcessStdio::default();
    let mut io = ProcessIo::default();
    if !paths.stdin.is_empty() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let writer = pipe::Sender::from_owned_fd(write)?;
        let fifo = open_input(&paths.stdin)?;
        let (close, closed) = oneshot::channel();
        io.stdin_close = Some(close);
        tokio::spawn(copy_stdin(fifo, writer, closed));
        stdio.stdin = Some(read);
    }
    if paths.stdout.starts_with(logger::SCHEME) {
        // containerd passes the same URI for stdout and stderr, and one
        // logger reads both.
        let (stdout_read, stdout_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (stderr_read, stderr_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let logger = Logger::start(&paths.stdout, stdout_read, stderr_read, env, reaper)
            .await
            .map_err(std::io::Error::other)?;
        io.logger = Some(logger);
        stdio.stdout = Some(stdout_write);
        stdio.stderr = Some(stderr_write);
        return Ok((stdio, io));
    }
    for (path, slot) in [
        (&paths.stdout, &mut stdio.stdout),
        (&paths.stderr, &mut stdio.stderr),
    ] {
        if path.is_empty() {
            continue;
        }
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let reader = pipe::Receiver::from_owned_fd(read)?;
        let output = open_output(path)?;
        io.copies
            .push(tokio::spawn(copy_output(reader, output, path.clone())));
        *slot = Some(write);
    }
    Ok((stdio, io))
}

/// Starts the copies between a pty master and the FIFOs. The terminal
/// merges stderr into stdout, so `paths.stderr` is unused.
///
/// For a `binary://` stdout, the logging program reads the terminal's
/// output from a pipe that the shim fills from the master, and an empty
/// pipe as its stderr. A copy of the master itself would share the
/// master's O_NONBLOCK flag and end with EIO instead of end-of-file, which
/// loggers that read with blocking calls do not expect. containerd's runc
/// shim feeds such loggers through a pipe too.
pub async fn attach_console(
    master: OwnedFd,
    paths: &StdioPaths,
    env: &LoggerEnv<'_>,
    reaper: &Reaper,
) -> std::io::Result<ProcessIo> {
    let mut io = ProcessIo::default();
    set_nonblocking(&master)?;
    if paths.stdout.starts_with(logger::SCHEME) {
        let (output_read, output_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (empty_read, empty_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        drop(empty_write);
        let logger = Logger::start(&paths.stdout, output_read, empty_read, env, reaper)
            .await
            .map_err(std::io::Error::other)?;
        io.logger = Some(logger);
        let reader = pipe::Receiver::from_owned_fd_unchecked(master.try_clone()?)?;
        let output = Output::Pipe(pipe::Sender::from_owned_fd(output_write)?);
        io.copies.push(tokio::spawn(copy_output(
            reader,
            output,
            paths.stdout.clone(),
        )));
    } else if !paths.stdout.is_empty() {
        let reader = pipe::Receiver::from_owned_fd_unchecked(master.try_clone()?)?;
        let output = open_output(&paths.stdout)?;
        io.copies.push(tokio::spawn(copy_output(
            reader,
            output,
            paths.stdout.clone(),
        )));
    }
    if !paths.stdin.is_empty() {
        let writer = pipe::Sender::from_owned_fd_unchecked(master.try_clone()?)?;
        let fifo = open_input(&paths.stdin)?;
        let (close, closed) = oneshot::channel();
        io.stdin_close = Some(close);
        tokio::spawn(copy_stdin(fifo, writer, closed));
    }
    io.console = Some(master);
    Ok(io)
}

/// A listening socket on which the runtime sends the pty master of a new
/// process (`--console-socket`). The socket file goes away on drop.
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind() -> std::io::Result<ConsoleSocket> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(CONSOLE_SOCKET_DIR)?;
        let path = Path::new(CONSOLE_SOCKET_DIR).join(format!(
            "{}-{}.sock",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(ConsoleSocket { path, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection and returns the file descriptor it carries.
    pub async fn receive_master(&self) -> std::io::Result<OwnedFd> {
        let (stream, _) = self.listener.accept().await?;
        loop {
            stream.readable().await?;
            let received = stream.try_io(tokio::io::Interest::READABLE, || {
                receive_fd(stream.as_raw_fd()).map_err(std::io::Error::from)
            });
            match received {
                Ok(Some(fd)) => return Ok(fd),
                Ok(None) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the runtime closed the console socket without sending a pty master",
                    ))
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(error),
            }
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn receive_fd(socket: i32) -> nix::Result<Option<OwnedFd>> {
    let mut buffer = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buffer)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let message = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for control in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = control {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed `fd` in this process for
                // this message, and nothing else owns it.
                return Ok(Some(unsafe {
                    <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
                }));
            }
        }
    }
    Ok(None)
}

/// Opens the source of a process's stdin. The FIFO opens read-write, so
/// reads do not return end-of-file while the client reconnects. CloseIO
/// ends the copy instead.
fn open_input(path: &str) -> std::io::Result<pipe::Receiver> {
    pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(strip_fifo_scheme(path)?)
}

enum Output {
    /// A FIFO, or the pipe to a logging program.
    Pipe(pipe::Sender),
    /// A regular file, written synchronously: writes to it do not block
    /// for long, and tokio's file type would need a thread pool.
    File(std::fs::File),
}

/// Opens the destination of a process's stdout or stderr: a FIFO
/// (read-write, so opening never blocks and writes never fail with EPIPE
/// while the client is away) or a `file://` path.
fn open_output(path: &str) -> std::io::Result<Output> {
    if let Some(file) = path.strip_prefix("file://") {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)?;
        return Ok(Output::File(file));
    }
    pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(strip_fifo_scheme(path)?)
        .map(Output::Pipe)
}

fn strip_fifo_scheme(path: &str) -> std::io::Result<&str> {
    if let Some(path) = path.strip_prefix("fifo://") {
        return Ok(path);
    }
    if path.contains("://") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("unsupported stdio URI {path}: use a FIFO path, file:// or binary://"),
        ));
    }
    Ok(path)
}

/// Size of the buffer of one copy between a process and a FIFO. Each copy
/// allocates it when data first arrives, so idle streams cost no buffer.
const COPY_BUFFER_SIZE: usize = 32 * 1024;

async fn copy_stdin(
    fifo: pipe::Receiver,
    mut writer: pipe::Sender,
    mut closed: oneshot::Receiver<()>,
) {
    let mut buffer = Vec::new();
    loop {
        tokio::select! {
            ready = fifo.readable() => {
                if let Err(error) = ready {
                    tracing::warn!(%error, "failed to poll stdin FIFO");
                    break;
                }
                buffer.resize(COPY_BUFFER_SIZE, 0);
                match fifo.try_read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        if writer.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(error) => {
                        tracing::warn!(%error, "failed to read stdin FIFO");
                        break;
                    }
                }
            },
            _ = &mut closed => {
                // Copy what the client wrote before it requested the close.
                buffer.resize(COPY_BUFFER_SIZE, 0);
                while let Ok(n) = fifo.try_read(&mut buffer) {
                    if n == 0 || writer.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                break;
            }
        }
    }
}

async fn copy_output(reader: pipe::Receiver, mut output: Output, path: String) {
    if let Err(error) = copy_until_end(reader, &mut output).await {
        tracing::warn!(%error, path, "failed to copy process output");
    }
}

impl Output {
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Pipe(fifo) => fifo.write_all(data).await,
            Output::File(file) => std::io::Write::write_all(file, data),
        }
    }
}

/// Copies until end-of-file. A pty master reports EIO once the last
/// slave descriptor closes, which ends the copy like end-of-file.
async fn copy_until_end(mut reader: pipe::Receiver, output: &mut Output) -> std::io::Result<()> {
    let ready = reader.readable().await;
    if let Err(error) = ready {
        if error.raw_os_error() == Some(libc::EIO) {
            return Ok(());
        }
        return Err(error);
    }
    let mut buffer = vec![0u8; COPY_BUFFER_SIZE];
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(error) if error.raw_os_error() == Some(libc::EIO) => return Ok(()),
            Err(error) => return Err(error),
        };
        output.write_all(&buffer[..n]).await?;
    }
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

fn set_window_size(fd: &OwnedFd, width: u16, height: u16) -> std::io::Result<()> {
    let size = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which points
    // to a live local value for the duration of the call.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if result == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
