//! Small helpers on files and processes shared by several modules.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::path::Path;

/// Writes `data` to `path` so that readers see the old or the new content,
/// never a part: a temporary file in the same directory, then a rename.
/// There is no fsync: the runtime's files describe processes, which do not
/// outlive a reboot, and a flush cost up to 15 ms on ext4.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The fields of `/proc/PID/stat` that the runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter: R, S, D, Z, T, X ...
    pub state: char,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
    /// The kernel's task flags (`PF_*`).
    pub flags: u64,
}

/// Task flag of a process that has begun to exit. The init of a pid
/// namespace stays in this state, not yet a zombie, until every other
/// process of the namespace is gone.
pub const PF_EXITING: u64 = 0x4;

impl ProcStat {
    /// Returns true when the process has exited or is exiting.
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X') || self.flags & PF_EXITING != 0
    }
}

/// Reads `/proc/PID/stat`. Returns `None` when there is no such process.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&text)
}

fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    // The command name is in parentheses and may contain spaces and ')',
    // so the fields are counted from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Counted after the command (field 2) and the state (field 3): the
    // flags (field 9) are the 6th of the remaining fields and the start
    // time (field 22) the 19th.
    let flags = fields.nth(5)?.parse().ok()?;
    let start_time = fields.nth(12)?.parse().ok()?;
    Some(ProcStat {
        state,
        start_time,
        flags,
    })
}

/// Closes every descriptor from `first` on except those in `keep`, so that
/// no descriptor of the runtime or its caller is open while the container
/// is set up. A directory descriptor there would let `process.cwd` or a
/// `/proc/self/fd/N` path reach the host, as in CVE-2024-21626.
pub fn close_fds_except(first: RawFd, keep: &[RawFd]) -> std::io::Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut start = first;
    for fd in keep.into_iter().chain(std::iter::once(RawFd::MAX)) {
        if fd > start {
            let last = if fd == RawFd::MAX {
                u32::MAX
            } else {
                (fd - 1) as u32
            };
            // SAFETY: close_range closes descriptors this process owns, and the
            // ones still in use are outside the range.
            let rc = unsafe { libc::syscall(libc::SYS_close_range, start as u32, last, 0u32) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if fd == RawFd::MAX {
            break;
        }
        start = fd + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::IntoRawFd;

    use super::*;

    #[test]
    fn proc_stat_of_self() {
        let stat = proc_stat(std::process::id() as i32).unwrap();
        assert!(stat.start_time > 0);
        assert!(matches!(stat.state, 'R' | 'S'), "{}", stat.state);
    }

    #[test]
    fn proc_stat_with_parens_in_name() {
        let text = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 1000 10";
        let stat = parse_proc_stat(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.flags, 4194560);
        assert_eq!(stat.start_time, 777);
        assert!(!stat.exited());
    }

    #[test]
    fn close_fds_except_keeps_listed() {
        // Runs in a child: closing descriptors of the test harness would
        // break it.
        match unsafe { libc::fork() } {
            0 => {
                let kept = std::fs::File::open("/").unwrap();
                let closed = std::fs::File::open("/").unwrap();
                let (kept, closed) = (kept.into_raw_fd(), closed.into_raw_fd());
                close_fds_except(3, &[kept]).unwrap();
                let kept_open = unsafe { libc::fcntl(kept, libc::F_GETFD) } >= 0;
                let closed_open = unsafe { libc::fcntl(closed, libc::F_GETFD) } >= 0;
                unsafe { libc::_exit(if kept_open && !closed_open { 0 } else { 1 }) }
            }
            pid => {
                let mut status = 0;
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert_eq!(libc::WEXITSTATUS(status), 0);
            }
        }
    }

    #[test]
    fn write_atomic_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
