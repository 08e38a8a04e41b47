//! Relaying hullctl's own stdio to a container process: stdin into the
//! process's FIFO, output FIFOs to hullctl's stdout and stderr, and the
//! terminal size into the process's pty.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context as _;
use hull_proto::containerd::task::v3::{CloseIoRequest, ResizePtyRequest};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::shim::Shim;
use super::tty;

/// Creates a FIFO at `path`, readable and writable only by root.
pub fn make_fifo(path: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .with_context(|| format!("failed to create FIFO {}", path.display()))
}

/// The stdin FIFO of a process, open for writing before the process
/// starts, so that the shim's open of its end does not wait.
pub struct StdinFifo {
    writer: std::fs::File,
}

/// Opens the FIFO at `fifo` for [`StdinFifo::forward`].
pub fn open_stdin(fifo: &Path) -> anyhow::Result<StdinFifo> {
    // Read-write, so the open does not wait for the shim's reader.
    let writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo)
        .with_context(|| format!("failed to open {}", fifo.display()))?;
    Ok(StdinFifo { writer })
}

impl StdinFifo {
    /// Copies hullctl's stdin into the FIFO on a thread of its own, since a
    /// read from a terminal cannot be cancelled, then closes the process's
    /// stdin through the shim at end of input. Call it once the process has
    /// started: the shim ignores a CloseIO for a process that has not.
    pub fn forward(self, shim: Shim, id: String, exec_id: String) {
        let mut writer = self.writer;
        let (done, ended) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buffer = [0u8; 8192];
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if writer.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = done.send(());
        });
        tokio::spawn(async move {
            if ended.await.is_ok() {
                let _ = shim
                    .client()
                    .close_io(CloseIoRequest {
                        id,
                        exec_id,
                        stdin: true,
                    })
                    .await;
            }
        });
    }
}

/// Sets the process's pty to the size of hullctl's terminal now and after
/// every SIGWINCH.
pub fn forward_resize(shim: Shim, id: String, exec_id: String) {
    tokio::spawn(async move {
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        loop {
            if let Some((width, height)) = tty::stdout_size() {
                let _ = shim
                    .client()
                    .resize_pty(ResizePtyRequest {
                        id: id.clone(),
                        exec_id: exec_id.clone(),
                        width,
                        height,
                    })
                    .await;
            }
            if winch.recv().await.is_none() {
                return;
            }
        }
    });
}

/// Passes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 that
/// hullctl receives on to the container's main process, as `docker run`
/// does by default. With a terminal, the pty turns Ctrl-C into SIGINT
/// inside the container instead.
pub fn forward_signals(shim: Shim, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
        (SignalKind::quit(), libc::SIGQUIT),
        (SignalKind::user_defined1(), libc::SIGUSR1),
        (SignalKind::user_defined2(), libc::SIGUSR2),
    ];
    for (kind, number) in kinds {
        let Ok(mut stream) = signal(kind) else {
            continue;
        };
        let shim = shim.clone();
        let id = id.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if let Err(status) = shim.kill("", number as u32, false).await {
                    eprintln!(
                        "hullctl: failed to pass signal {number} to container {id}: {}",
                        status.message()
                    );
                }
            }
        });
    }
}

/// A copy from an output FIFO to hullctl's stdout or stderr.
pub struct OutputCopy {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl OutputCopy {
    /// Opens the FIFO at `fifo` read-write, so the open never waits and the
    /// read never sees end-of-file while the shim reopens it, and copies it
    /// to stdout, or stderr when `to_stderr`.
    pub fn start(fifo: &Path, to_stderr: bool) -> anyhow::Result<OutputCopy> {
        let reader = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(fifo)
            .with_context(|| format!("failed to open {}", fifo.display()))?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(copy(reader, to_stderr, stopped));
        Ok(OutputCopy { stop, task })
    }

    /// Copies what is left in the FIFO and ends the copy. The shim has
    /// written all output once the process's exit is reported.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn copy(reader: pipe::Receiver, to_stderr: bool, mut stopped: oneshot::Receiver<()>) {
    let mut buffer = vec![0u8; 32 * 1024];
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut write = async |bytes: &[u8]| {
        let written = if to_stderr {
            stderr.write_all(bytes).await.and(stderr.flush().await)
        } else {
            stdout.write_all(bytes).await.and(stdout.flush().await)
        };
        written.is_ok()
    };
    loop {
        tokio::select! {
            ready = reader.readable() => {
                if ready.is_err() {
                    return;
                }
                match reader.try_read(&mut buffer) {
                    Ok(0) => return,
                    Ok(n) => {
                        if !write(&buffer[..n]).await {
                            return;
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
            _ = &mut stopped => {
                while let Ok(n) = reader.try_read(&mut buffer) {
                    if n == 0 || !write(&buffer[..n]).await {
                        break;
                    }
                }
                return;
            }
        }
    }
}
