//! The event stream of `hull events`: JSON lines in runc 1.1's `types.Event`
//! shape, `{"type":"stats","id":ID,"data":STATS}` and `{"type":"oom","id":ID}`.
//!
//! The stream runs in one thread: it polls the cgroup's OOM descriptor and a
//! pidfd of the container's init, with a timeout that ends at the next
//! statistics tick.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use serde::Serialize;

use crate::cgroups::Stats;
use crate::container::Container;
use crate::{Error, Result};

/// One line of the stream.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a Stats>,
}

impl Event<'_> {
    /// Encodes the event as one JSON line, with its newline.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("events encode");
        line.push('\n');
        line
    }
}

/// Reads the container's statistics, with the error wording of runc 1.1.
pub fn read_stats(container: &Container) -> Result<Stats> {
    container
        .state
        .cgroup
        .stats()
        .map_err(|e| Error::Message(format!("unable to get container cgroup stats: {e}")))
}

/// Writes one line and returns false when the reader has gone (EPIPE).
fn emit(out: &mut dyn Write, event: &Event) -> Result<bool> {
    match out
        .write_all(event.to_line().as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::io("write event", e)),
    }
}

/// Opens a pidfd of the container's init, or returns `None` when the init
/// has exited. The start time is checked after opening, so that a reused
/// pid does not count as the init.
fn open_init(container: &Container) -> Result<Option<OwnedFd>> {
    let Some(pid) = Pid::from_raw(container.state.init_pid) else {
        return Ok(None);
    };
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(None),
        Err(e) => {
            return Err(Error::io(
                format!("pidfd_open of init pid {}", pid.as_raw_nonzero()),
                e.into(),
            ))
        }
    };
    Ok(container.init_alive().then_some(pidfd))
}

fn timespec(duration: Duration) -> Timespec {
    Timespec {
        tv_sec: duration.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: duration.subsec_nanos().into(),
    }
}

/// Writes a stats event every `interval` and an OOM event for every OOM
/// notification, until the container's init exits, its cgroup is removed
/// or emptied, or the reader closes `out`. A failed statistics read is
/// logged and the stream goes on, as in runc 1.1.
pub fn stream(container: &Container, interval: Duration, out: &mut dyn Write) -> Result<()> {
    let id = container.id();
    let mut watcher = container.state.cgroup.watch_oom()?;
    let Some(pidfd) = open_init(container)? else {
        return Ok(());
    };
    let mut next_tick = Instant::now() + interval;
    loop {
        let timeout = next_tick.saturating_duration_since(Instant::now());
        let mut fds = [
            PollFd::new(&watcher, PollFlags::IN),
            PollFd::new(&pidfd, PollFlags::IN),
        ];
        match poll(&mut fds, Some(&timespec(timeout))) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("poll for container events", e.into())),
        }
        let init_exited = !fds[1].revents().is_empty();

        // The kernel signals an OOM before the kill, so reading after the
        // init's exit still reports an OOM that killed it.
        let news = watcher.read()?;
        for _ in 0..news.ooms {
            let oom = Event {
                kind: "oom",
                id,
                data: None,
            };
            if !emit(out, &oom)? {
                return Ok(());
            }
        }
        if news.ended || init_exited {
            return Ok(());
        }

        let now = Instant::now();
        if now >= next_tick {
            match read_stats(container) {
                Ok(stats) => {
                    let event = Event {
                        kind: "stats",
                        id,
                        data: Some(&stats),
                    };
                    if !emit(out, &event)? {
                        return Ok(());
                    }
                }
                Err(err) => tracing::error!(id, error = %err, "failed to read stats"),
            }
            next_tick += interval;
            if next_tick <= now {
                next_tick = now + interval;
            }
        }
    }
}
