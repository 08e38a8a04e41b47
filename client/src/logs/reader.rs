//! Reading a json-file log: all of it or its tail, filtered by time, and
//! following it through rotation while the container runs.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::record::{decode, format_time, Stream};
use super::segment::{file_id, open_segments, rotated_files, FileId, Segment};
use super::tail::find_tail_start;

/// Maximum time between two calls of a follower's `exited` check, and the
/// period of its reads when inotify is unavailable.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// Filters and format of a log read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Keep printing new output until the container exits.
    pub follow: bool,
    /// Print only the last N lines that were written before the read began.
    pub tail: Option<usize>,
    /// Print only lines written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Print only lines written at or before this time. A follower stops
    /// once this time has passed.
    pub until: Option<DateTime<Utc>>,
    /// Start each line with the time it was written (RFC 3339 with nine
    /// fraction digits) and a space.
    pub timestamps: bool,
}

/// Prints the log at `log_path` (and its rotated files): stdout records to
/// `stdout`, stderr records to `stderr`, with the partial records of a
/// long line joined into one line.
///
/// With `options.follow`, it then waits for new output and prints it,
/// through rotations, until `exited` returns true. `exited` is called at
/// least every 250 ms, and at once when `wake` becomes readable. After it
/// returns true, the log is read to its end once more, so `exited` must
/// return true only after the logger has written the container's last
/// output. Returns the number of lines that are not records, which are
/// skipped.
pub fn read_logs<O: Write, E: Write>(
    log_path: &Path,
    options: &ReadOptions,
    stdout: O,
    stderr: E,
    mut exited: impl FnMut() -> bool,
    wake: Option<BorrowedFd<'_>>,
) -> anyhow::Result<u64> {
    let directory = log_path.parent().unwrap_or(Path::new("."));
    // Watch first, so that no change after the first read goes unnoticed.
    let watcher = if options.follow {
        Some(Watcher::new(directory, wake))
    } else {
        None
    };
    let mut segments = open_segments(log_path)
        .with_context(|| format!("failed to open log {}", log_path.display()))?;
    let mut printer = Printer::new(stdout, stderr, options);
    if let Some(lines) = options.tail {
        let start = find_tail_start(&segments, lines)
            .with_context(|| format!("failed to read log {}", log_path.display()))?;
        segments.drain(..start.segment);
        if let Some(first) = segments.first_mut() {
            first.offset = start.offset;
        }
        printer.skip = start.skip;
    }
    let mut reader = Reader {
        log_path,
        segments: segments.into(),
        buffer: Vec::new(),
    };
    let read_error = || format!("failed to read log {}", log_path.display());
    let Some(watcher) = watcher else {
        reader.read_all(&mut printer).with_context(read_error)?;
        printer.flush()?;
        return Ok(printer.invalid);
    };
    loop {
        let done = exited() || options.until.is_some_and(|until| Utc::now() > until);
        reader.follow(&mut printer).with_context(read_error)?;
        printer.flush()?;
        if done {
            return Ok(printer.invalid);
        }
        watcher.wait();
    }
}

/// The open files of a log, oldest first, and the reading position.
struct Reader<'a> {
    log_path: &'a Path,
    segments: VecDeque<Segment>,
    buffer: Vec<u8>,
}

impl Reader<'_> {
    /// Prints every complete line of the files opened at the start.
    fn read_all<O: Write, E: Write>(&mut self, printer: &mut Printer<O, E>) -> std::io::Result<()> {
        while let Some(mut segment) = self.segments.pop_front() {
            segment.read_lines(&mut self.buffer, |id, offset, line| {
                printer.print(id, offset, line)
            })?;
        }
        Ok(())
    }

    /// Prints what was written since the last call, moving on to newer
    /// files when the log has rotated.
    fn follow<O: Write, E: Write>(&mut self, printer: &mut Printer<O, E>) -> std::io::Result<()> {
        loop {
            if self.segments.is_empty() {
                // The logger has not created the log yet.
                match Segment::open(self.log_path)? {
                    Some(segment) => self.segments.push_back(segment),
                    None => return Ok(()),
                }
            }
            let segment = self.segments.front_mut().expect("segments is not empty");
            segment.read_lines(&mut self.buffer, |id, offset, line| {
                printer.print(id, offset, line)
            })?;
            if self.segments.len() > 1 {
                self.segments.pop_front();
                continue;
            }
            if !self.open_newer()? {
                return Ok(());
            }
            // Read the rest of the current file before the newer ones: the
            // writer may have added to it just before the rotation.
        }
    }

    /// Opens the files that rotation made newer than the current one and
    /// returns whether there were any. A log truncated by max-file 1 is
    /// read again from its start.
    fn open_newer(&mut self) -> std::io::Result<bool> {
        let current = self.segments.back_mut().expect("segments is not empty");
        match std::fs::metadata(self.log_path) {
            Ok(metadata) if file_id(&metadata) == current.id => {
                if metadata.len() < current.offset {
                    current.offset = 0;
                }
                return Ok(false);
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        // Newer files come before the current one in rotated_files, which
        // lists the newest first. A current file that no longer exists was
        // removed as the oldest, so every rotated file is newer.
        let rotated = rotated_files(self.log_path);
        let mut ids = Vec::with_capacity(rotated.len());
        for path in &rotated {
            ids.push(
                std::fs::metadata(path)
                    .ok()
                    .map(|metadata| file_id(&metadata)),
            );
        }
        let newer = match ids.iter().position(|id| *id == Some(current.id)) {
            Some(position) => &rotated[..position],
            None if current.file.metadata()?.nlink() == 0 => &rotated[..],
            // The current file is being renamed: look again on the next call.
            None => return Ok(false),
        };
        let mut opened = false;
        for path in newer
            .iter()
            .rev()
            .chain(std::iter::once(&self.log_path.to_path_buf()))
        {
            let Some(segment) = Segment::open(path)? else {
                continue;
            };
            if self.segments.iter().all(|open| open.id != segment.id) {
                self.segments.push_back(segment);
                opened = true;
            }
        }
        Ok(opened)
    }
}

/// Progress of the current line of one stream.
#[derive(Default, Clone, Copy)]
struct LineState {
    /// A partial record started the current line.
    in_line: bool,
    /// The current line passes the time filters.
    shown: bool,
}

/// Writes records to the output of their stream.
struct Printer<O, E> {
    stdout: O,
    stderr: E,
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    lines: [LineState; 2],
    /// Stream of the last record written, whose output is flushed before
    /// the other stream's so that a terminal shows both in order.
    last: Option<Stream>,
    /// Records that belong to lines before the tail.
    skip: HashSet<(FileId, u64)>,
    /// Lines that are not records.
    invalid: u64,
}

impl<O: Write, E: Write> Printer<O, E> {
    fn new(stdout: O, stderr: E, options: &ReadOptions) -> Printer<O, E> {
        Printer {
            stdout,
            stderr,
            timestamps: options.timestamps,
            since: options.since,
            until: options.until,
            lines: [LineState::default(); 2],
            last: None,
            skip: HashSet::new(),
            invalid: 0,
        }
    }

    fn print(&mut self, id: FileId, offset: u64, line: &[u8]) -> std::io::Result<()> {
        if line.is_empty() || self.skip.remove(&(id, offset)) {
            return Ok(());
        }
        let Some(record) = decode(line) else {
            self.invalid += 1;
            return Ok(());
        };
        let state = &mut self.lines[record.stream.index()];
        let starts_line = !state.in_line;
        if starts_line {
            state.shown = self.since.is_none_or(|since| record.time >= since)
                && self.until.is_none_or(|until| record.time <= until);
        }
        state.in_line = !record.ends_line();
        if !state.shown {
            return Ok(());
        }
        if self.last != Some(record.stream) {
            match self.last {
                Some(Stream::Stdout) => self.stdout.flush()?,
                Some(Stream::Stderr) => self.stderr.flush()?,
                None => {}
            }
            self.last = Some(record.stream);
        }
        let out: &mut dyn Write = match record.stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        if self.timestamps && starts_line {
            write!(out, "{} ", format_time(record.time))?;
        }
        out.write_all(record.log.as_bytes())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stdout.flush()?;
        self.stderr.flush()
    }
}

/// Wakes a follower when a file in the log's directory changes, when its
/// wake descriptor becomes readable, or after [`FOLLOW_INTERVAL`].
struct Watcher<'a> {
    /// `None` when inotify is unavailable (no instances or watches left),
    /// and the follower polls.
    inotify: Option<Inotify>,
    wake: Option<BorrowedFd<'a>>,
}

impl<'a> Watcher<'a> {
    fn new(directory: &Path, wake: Option<BorrowedFd<'a>>) -> Watcher<'a> {
        let flags = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .and_then(|inotify| inotify.add_watch(directory, flags).map(|_| inotify));
        Watcher {
            inotify: inotify.ok(),
            wake,
        }
    }

    fn wait(&self) {
        let timeout = PollTimeout::try_from(FOLLOW_INTERVAL).unwrap_or(PollTimeout::MAX);
        let mut fds: Vec<PollFd> = self
            .inotify
            .iter()
            .map(|inotify| inotify.as_fd())
            .chain(self.wake)
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        if fds.is_empty() {
            std::thread::sleep(FOLLOW_INTERVAL);
            return;
        }
        let _ = poll(&mut fds, timeout);
        if let Some(inotify) = &self.inotify {
            // Drain the events, which do not block: only their arrival
            // matters.
            while inotify.read_events().is_ok_and(|events| !events.is_empty()) {}
        }
    }
}

impl Drop for Watcher<'_> {
    fn drop(&mut self) {
        // Closing an inotify instance waits for an RCU grace period, some
        // 10 to 20 ms, which the follower's caller need not wait for.
        if let Some(inotify) = self.inotify.take() {
            std::thread::spawn(move || drop(inotify));
        }
    }
}

/// Returns true when `error` comes from a write to a closed pipe, as when
/// the output goes to `head`: the reader stops there, and quietly.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
