use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::TimeDelta;

use super::*;
use crate::logs::options::LogOptions;
use crate::logs::record::MAX_RECORD_BYTES;
use crate::logs::writer::{rotated_path, JsonFileWriter, LineBuffer};

fn time(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

/// Writes `records` as `(stream, log, seconds after a base time)`.
fn write_records(path: &Path, options: LogOptions, records: &[(Stream, &str, i64)]) {
    let mut writer = JsonFileWriter::open(path, options).unwrap();
    for &(stream, log, seconds) in records {
        writer
            .append(stream, log.as_bytes(), time(seconds))
            .unwrap();
        writer.flush().unwrap();
    }
}

/// Reads the log without following and returns (stdout, stderr).
fn read(path: &Path, options: &ReadOptions) -> (String, String) {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    read_logs(path, options, &mut stdout, &mut stderr, || true, None).unwrap();
    (
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn small_files() -> LogOptions {
    LogOptions {
        max_size: Some(250),
        max_file: 10,
    }
}

fn numbered(path: &Path, count: i64) {
    let lines: Vec<String> = (0..count).map(|i| format!("line {i}\n")).collect();
    let records: Vec<(Stream, &str, i64)> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| (Stream::Stdout, line.as_str(), i as i64))
        .collect();
    write_records(path, small_files(), &records);
}

#[test]
fn streams_go_to_their_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    write_records(
        &path,
        LogOptions::default(),
        &[
            (Stream::Stdout, "out 1\n", 0),
            (Stream::Stderr, "err 1\n", 1),
            (Stream::Stdout, "out 2\n", 2),
        ],
    );
    let (stdout, stderr) = read(&path, &ReadOptions::default());
    assert_eq!(stdout, "out 1\nout 2\n");
    assert_eq!(stderr, "err 1\n");
}

#[test]
fn rotated_files_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    numbered(&path, 20);
    assert!(
        rotated_path(&path, 3).exists(),
        "the test log did not rotate"
    );
    let (stdout, _) = read(&path, &ReadOptions::default());
    let expected: String = (0..20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(stdout, expected);
}

#[test]
fn tail_spans_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    numbered(&path, 20);
    let current_lines = std::fs::read_to_string(&path).unwrap().lines().count();
    let tail = current_lines + 2;
    let options = ReadOptions {
        tail: Some(tail),
        ..Default::default()
    };
    let (stdout, _) = read(&path, &options);
    let expected: String = (20 - tail..20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(stdout, expected);
    let all = ReadOptions {
        tail: Some(1000),
        ..Default::default()
    };
    assert_eq!(read(&path, &all).0.lines().count(), 20);
}

#[test]
fn since_and_until_filter_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    numbered(&path, 10);
    let options = ReadOptions {
        since: Some(time(3)),
        until: Some(time(5)),
        ..Default::default()
    };
    assert_eq!(read(&path, &options).0, "line 3\nline 4\nline 5\n");
    // The tail applies first, then the time filters, as in docker.
    let options = ReadOptions {
        tail: Some(3),
        since: Some(time(8)),
        ..Default::default()
    };
    assert_eq!(read(&path, &options).0, "line 8\nline 9\n");
}

#[test]
fn timestamps_prefix_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    write_records(
        &path,
        LogOptions::default(),
        &[(Stream::Stdout, "a\n", 0), (Stream::Stderr, "b\n", 1)],
    );
    let options = ReadOptions {
        timestamps: true,
        ..Default::default()
    };
    let (stdout, stderr) = read(&path, &options);
    assert_eq!(stdout, "2027-01-15T08:00:00.000000000Z a\n");
    assert_eq!(stderr, "2027-01-15T08:00:01.000000000Z b\n");
}

#[test]
fn partial_records_joined() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let long = format!("{}\n", "z".repeat(MAX_RECORD_BYTES * 2 + 3));
    let mut writer = JsonFileWriter::open(&path, LogOptions::default()).unwrap();
    let mut stdout = LineBuffer::new(Stream::Stdout);
    let mut stderr = LineBuffer::new(Stream::Stderr);
    stdout
        .push(&long.as_bytes()[..MAX_RECORD_BYTES + 5], &mut writer)
        .unwrap();
    stderr.push(b"between\n", &mut writer).unwrap();
    stdout
        .push(&long.as_bytes()[MAX_RECORD_BYTES + 5..], &mut writer)
        .unwrap();
    writer.flush().unwrap();
    let records = std::fs::read_to_string(&path).unwrap().lines().count();
    assert_eq!(records, 4, "the long line was not split");

    let options = ReadOptions {
        timestamps: true,
        ..Default::default()
    };
    let (out, err) = read(&path, &options);
    assert_eq!(out.matches('Z').count(), 1, "one timestamp per joined line");
    let (_, line) = out.split_once(' ').unwrap();
    assert_eq!(line, long);
    assert!(err.ends_with(" between\n"), "{err}");
    // The tail counts the joined line once.
    let options = ReadOptions {
        tail: Some(1),
        ..Default::default()
    };
    assert_eq!(read(&path, &options).0, long);
}

#[test]
fn invalid_lines_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    write_records(&path, LogOptions::default(), &[(Stream::Stdout, "a\n", 0)]);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(b"not json\n\n").unwrap();
    drop(file);
    write_records(&path, LogOptions::default(), &[(Stream::Stdout, "b\n", 1)]);
    let mut stdout = Vec::new();
    let invalid = read_logs(
        &path,
        &ReadOptions::default(),
        &mut stdout,
        std::io::sink(),
        || true,
        None,
    )
    .unwrap();
    assert_eq!(stdout, b"a\nb\n");
    assert_eq!(invalid, 1);
}

#[test]
fn missing_log_reads_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    assert_eq!(
        read(&path, &ReadOptions::default()),
        (String::new(), String::new())
    );
}

#[test]
fn follow_through_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    numbered(&path, 5);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let path = path.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            // Give the reader time to print the tail of the first lines.
            std::thread::sleep(Duration::from_millis(200));
            let mut writer = JsonFileWriter::open(&path, small_files()).unwrap();
            for i in 5..200 {
                let line = format!("line {i}\n");
                let stream = if i % 7 == 0 {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                };
                writer.append(stream, line.as_bytes(), Utc::now()).unwrap();
                writer.flush().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let options = ReadOptions {
        follow: true,
        tail: Some(2),
        ..Default::default()
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let finished = || done.load(Ordering::SeqCst);
    read_logs(&path, &options, &mut stdout, &mut stderr, finished, None).unwrap();
    writer.join().unwrap();

    let expected_out: String = (3..200)
        .filter(|i| i < &5 || i % 7 != 0)
        .map(|i| format!("line {i}\n"))
        .collect();
    let expected_err: String = (5..200)
        .filter(|i| i % 7 == 0)
        .map(|i| format!("line {i}\n"))
        .collect();
    assert_eq!(String::from_utf8(stdout).unwrap(), expected_out);
    assert_eq!(String::from_utf8(stderr).unwrap(), expected_err);
    assert!(
        rotated_path(&path, 9).exists(),
        "the log did not rotate enough"
    );
}

#[test]
fn follow_waits_for_log_creation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let path = path.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            write_records(
                &path,
                LogOptions::default(),
                &[(Stream::Stdout, "late\n", 0)],
            );
            done.store(true, Ordering::SeqCst);
        })
    };
    let options = ReadOptions {
        follow: true,
        ..Default::default()
    };
    let mut stdout = Vec::new();
    let finished = || done.load(Ordering::SeqCst);
    read_logs(
        &path,
        &options,
        &mut stdout,
        std::io::sink(),
        finished,
        None,
    )
    .unwrap();
    writer.join().unwrap();
    assert_eq!(stdout, b"late\n");
}

#[test]
fn follow_stops_after_until() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    numbered(&path, 3);
    let options = ReadOptions {
        follow: true,
        until: Some(Utc::now() + TimeDelta::milliseconds(300)),
        ..Default::default()
    };
    let mut stdout = Vec::new();
    read_logs(
        &path,
        &options,
        &mut stdout,
        std::io::sink(),
        || false,
        None,
    )
    .unwrap();
    assert!(stdout.is_empty(), "lines after --until were printed");
}
