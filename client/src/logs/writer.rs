//! Writing json-file logs: records, size-based rotation and the split of
//! output into lines.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::options::LogOptions;
use super::record::{self, Stream, MAX_RECORD_BYTES};

/// Returns the path of rotated file `index` of `log_path`: `<log>.1` is the
/// newest.
pub fn rotated_path(log_path: &Path, index: u32) -> PathBuf {
    let mut path = log_path.as_os_str().to_owned();
    path.push(format!(".{index}"));
    PathBuf::from(path)
}

/// Appends records to a json-file log and rotates it by size.
///
/// Records are collected in memory and reach the file in one write on
/// [`JsonFileWriter::flush`], so a reader sees whole records.
pub struct JsonFileWriter {
    path: PathBuf,
    options: LogOptions,
    file: File,
    /// Bytes in the current file.
    size: u64,
    /// Encoded records not written yet.
    pending: Vec<u8>,
}

impl JsonFileWriter {
    /// Opens `path` for appending, creating it when absent. A last line cut
    /// short by a crash gets its newline, so the next record starts a line.
    pub fn open(path: &Path, options: LogOptions) -> std::io::Result<JsonFileWriter> {
        let mut file = open_append(path)?;
        let mut size = file.metadata()?.len();
        if size > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                size += 1;
            }
        }
        Ok(JsonFileWriter {
            path: path.to_path_buf(),
            options,
            file,
            size,
            pending: Vec::new(),
        })
    }

    /// Adds the record of `log` (at most [`MAX_RECORD_BYTES`]), rotating
    /// first when the record would take the file past max-size.
    pub fn append(
        &mut self,
        stream: Stream,
        log: &[u8],
        time: DateTime<Utc>,
    ) -> std::io::Result<()> {
        let start = self.pending.len();
        record::encode(&mut self.pending, stream, log, time);
        let Some(max_size) = self.options.max_size else {
            return Ok(());
        };
        let length = (self.pending.len() - start) as u64;
        let before = self.size + start as u64;
        if before > 0 && before + length > max_size {
            let encoded = self.pending.split_off(start);
            let flushed = self.flush().and_then(|()| self.rotate());
            self.pending.extend_from_slice(&encoded);
            flushed?;
        }
        Ok(())
    }

    /// Writes the records added since the last flush. After a failure the
    /// records are dropped, so a full disk costs output but never memory.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.pending);
        if result.is_ok() {
            self.size += self.pending.len() as u64;
        } else {
            // The failed write may have stored part of a record, which the
            // next record must not extend.
            if let Ok(size) = self.file.metadata().map(|metadata| metadata.len()) {
                if size > self.size {
                    let _ = self.file.write_all(b"\n");
                    self.size = size + 1;
                }
            }
        }
        self.pending.clear();
        result
    }

    /// Moves `<log>` to `<log>.1` (and `.1` to `.2`, and so on), drops the
    /// files past max-file and starts an empty `<log>`. With max-file 1 the
    /// log is truncated instead.
    fn rotate(&mut self) -> std::io::Result<()> {
        let max_file = self.options.max_file;
        if max_file <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        // Files from an earlier run with a larger max-file go too.
        let mut index = max_file - 1;
        while remove_if_present(&rotated_path(&self.path, index))? {
            index += 1;
        }
        for index in (1..max_file - 1).rev() {
            rename_if_present(
                &rotated_path(&self.path, index),
                &rotated_path(&self.path, index + 1),
            )?;
        }
        std::fs::rename(&self.path, rotated_path(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
}

fn remove_if_present(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

fn rename_if_present(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Time that output without a newline waits for the rest of its line
/// before it is written as a partial record, so that prompts show up in
/// `logs -f`.
pub const PARTIAL_DELAY: Duration = Duration::from_millis(100);

/// The output of one stream that has not become a record yet: the start of
/// a line that has no newline so far.
pub struct LineBuffer {
    stream: Stream,
    held: Vec<u8>,
    /// When the oldest held byte arrived.
    held_since: Option<Instant>,
}

impl LineBuffer {
    pub fn new(stream: Stream) -> LineBuffer {
        LineBuffer {
            stream,
            held: Vec::new(),
            held_since: None,
        }
    }

    /// Adds output and appends a record for each complete line and each
    /// [`MAX_RECORD_BYTES`] of a longer line. The rest waits for more
    /// output, [`LineBuffer::deadline`] or the end of the stream.
    pub fn push(&mut self, data: &[u8], writer: &mut JsonFileWriter) -> std::io::Result<()> {
        if self.held.is_empty() {
            self.held_since = Some(Instant::now());
        }
        self.held.extend_from_slice(data);
        let time = Utc::now();
        let mut start = 0;
        let mut result = Ok(());
        loop {
            let rest = &self.held[start..];
            let window = &rest[..rest.len().min(MAX_RECORD_BYTES)];
            let end = match window.iter().position(|&byte| byte == b'\n') {
                Some(newline) => newline + 1,
                None if rest.len() >= MAX_RECORD_BYTES => utf8_boundary(window),
                None => break,
            };
            result = result.and(writer.append(self.stream, &rest[..end], time));
            start += end;
        }
        if start > 0 {
            self.held.drain(..start);
            self.held_since = (!self.held.is_empty()).then(Instant::now);
        }
        result
    }

    /// Returns when the held output is due as a partial record.
    pub fn deadline(&self) -> Option<Instant> {
        self.held_since.map(|since| since + PARTIAL_DELAY)
    }

    /// Appends the held output as a partial record. Unless `at_end`, a
    /// character cut by the end of the output waits for its other bytes.
    pub fn flush_partial(
        &mut self,
        writer: &mut JsonFileWriter,
        at_end: bool,
    ) -> std::io::Result<()> {
        let end = if at_end {
            self.held.len()
        } else {
            utf8_boundary(&self.held)
        };
        if end == 0 {
            return Ok(());
        }
        let result = writer.append(self.stream, &self.held[..end], Utc::now());
        self.held.drain(..end);
        self.held_since = (!self.held.is_empty()).then(Instant::now);
        result
    }
}

/// Returns the length of `bytes` without a UTF-8 sequence cut by its end,
/// so that a split between two records does not turn one character into
/// two U+FFFD. Invalid bytes count as whole characters.
fn utf8_boundary(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte < 0x80 {
            break;
        }
        if byte >= 0xC0 {
            let width = match byte {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            if width > back {
                return bytes.len() - back;
            }
            break;
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::record::decode;

    fn records(path: &Path) -> Vec<(String, Stream)> {
        let text = std::fs::read(path).unwrap();
        text.split(|&byte| byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                let record = decode(line).expect("invalid record");
                (record.log.into_owned(), record.stream)
            })
            .collect()
    }

    fn logs(path: &Path) -> Vec<String> {
        records(path).into_iter().map(|(log, _)| log).collect()
    }

    #[test]
    fn lines_become_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut writer = JsonFileWriter::open(&path, LogOptions::default()).unwrap();
        let mut stdout = LineBuffer::new(Stream::Stdout);
        let mut stderr = LineBuffer::new(Stream::Stderr);
        stdout.push(b"one\ntw", &mut writer).unwrap();
        stderr.push(b"err\n", &mut writer).unwrap();
        stdout.push(b"o\nthree", &mut writer).unwrap();
        writer.flush().unwrap();
        assert_eq!(
            records(&path),
            [
                ("one\n".to_owned(), Stream::Stdout),
                ("err\n".to_owned(), Stream::Stderr),
                ("two\n".to_owned(), Stream::Stdout),
            ]
        );
        assert!(stdout.deadline().is_some());
        stdout.flush_partial(&mut writer, true).unwrap();
        writer.flush().unwrap();
        assert_eq!(logs(&path).last().unwrap(), "three");
        assert!(stdout.deadline().is_none());
    }

    #[test]
    fn long_line_split_into_partials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut writer = JsonFileWriter::open(&path, LogOptions::default()).unwrap();
        let mut stdout = LineBuffer::new(Stream::Stdout);
        let mut line = "x".repeat(MAX_RECORD_BYTES * 2 + 10);
        line.push('\n');
        // The line arrives in pieces smaller than a record.
        for piece in line.as_bytes().chunks(5000) {
            stdout.push(piece, &mut writer).unwrap();
        }
        writer.flush().unwrap();
        let logs = logs(&path);
        let lengths: Vec<usize> = logs.iter().map(String::len).collect();
        assert_eq!(lengths, [MAX_RECORD_BYTES, MAX_RECORD_BYTES, 11]);
        assert!(!logs[0].ends_with('\n'));
        assert_eq!(logs.concat(), line);
    }

    #[test]
    fn split_keeps_characters_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut writer = JsonFileWriter::open(&path, LogOptions::default()).unwrap();
        let mut stdout = LineBuffer::new(Stream::Stdout);
        // "é" is two bytes, and the 16 KiB mark falls inside one.
        let line = format!("{}{}\n", "a", "é".repeat(MAX_RECORD_BYTES));
        stdout.push(line.as_bytes(), &mut writer).unwrap();
        writer.flush().unwrap();
        let logs = logs(&path);
        assert_eq!(logs[0].len(), MAX_RECORD_BYTES - 1);
        assert!(!logs.concat().contains('\u{fffd}'));
        assert_eq!(logs.concat(), line);
    }

    #[test]
    fn held_partial_waits_for_character() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut writer = JsonFileWriter::open(&path, LogOptions::default()).unwrap();
        let mut stdout = LineBuffer::new(Stream::Stdout);
        stdout
            .push("$ é".as_bytes()[..3].as_ref(), &mut writer)
            .unwrap();
        stdout.flush_partial(&mut writer, false).unwrap();
        stdout.push(&"é\n".as_bytes()[1..], &mut writer).unwrap();
        writer.flush().unwrap();
        assert_eq!(logs(&path), ["$ ", "é\n"]);
    }

    #[test]
    fn rotation_keeps_max_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let options = LogOptions {
            max_size: Some(200),
            max_file: 3,
        };
        let mut writer = JsonFileWriter::open(&path, options).unwrap();
        for index in 0..20 {
            let line = format!("line {index:02}\n");
            writer
                .append(Stream::Stdout, line.as_bytes(), Utc::now())
                .unwrap();
            writer.flush().unwrap();
        }
        for file in [&path, &rotated_path(&path, 1), &rotated_path(&path, 2)] {
            let size = std::fs::metadata(file).unwrap().len();
            assert!(size > 0, "{} is empty", file.display());
            assert!(size <= 200, "{}: {size} bytes", file.display());
        }
        assert!(!rotated_path(&path, 3).exists());
        let mut all = logs(&rotated_path(&path, 2));
        all.extend(logs(&rotated_path(&path, 1)));
        all.extend(logs(&path));
        assert_eq!(all.last().unwrap(), "line 19\n");
        // Every kept record is in order, with none missing in between.
        let first: usize = all[0][5..7].parse().unwrap();
        let expected: Vec<String> = (first..20).map(|i| format!("line {i:02}\n")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn rotation_prunes_files_of_larger_max_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        for index in 1..=6 {
            std::fs::write(rotated_path(&path, index), "").unwrap();
        }
        let options = LogOptions {
            max_size: Some(100),
            max_file: 2,
        };
        let mut writer = JsonFileWriter::open(&path, options).unwrap();
        for _ in 0..3 {
            writer
                .append(Stream::Stdout, b"0123456789\n", Utc::now())
                .unwrap();
        }
        writer.flush().unwrap();
        assert!(rotated_path(&path, 1).exists());
        for index in 2..=6 {
            assert!(!rotated_path(&path, index).exists(), ".{index} kept");
        }
    }

    #[test]
    fn max_file_one_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let options = LogOptions {
            max_size: Some(150),
            max_file: 1,
        };
        let mut writer = JsonFileWriter::open(&path, options).unwrap();
        for index in 0..10 {
            let line = format!("line {index}\n");
            writer
                .append(Stream::Stdout, line.as_bytes(), Utc::now())
                .unwrap();
        }
        writer.flush().unwrap();
        assert!(!rotated_path(&path, 1).exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= 150);
        assert_eq!(logs(&path).last().unwrap(), "line 9\n");
    }

    #[test]
    fn reopen_appends_after_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        std::fs::write(&path, "{\"log\":\"cut").unwrap();
        let mut writer = JsonFileWriter::open(&path, LogOptions::default()).unwrap();
        writer
            .append(Stream::Stdout, b"next\n", Utc::now())
            .unwrap();
        writer.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(decode(lines[1].as_bytes()).unwrap().log, "next\n");
    }

    #[test]
    fn utf8_boundary_cases() {
        assert_eq!(utf8_boundary(b"abc"), 3);
        assert_eq!(utf8_boundary("aé".as_bytes()), 3);
        assert_eq!(utf8_boundary(&"aé".as_bytes()[..2]), 1);
        assert_eq!(utf8_boundary(&"a€".as_bytes()[..3]), 1);
        assert_eq!(utf8_boundary(&"a😀".as_bytes()[..4]), 1);
        assert_eq!(utf8_boundary(b"a\xff"), 2);
    }
}
