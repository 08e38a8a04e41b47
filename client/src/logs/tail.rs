//! Finding where the last N lines of a log start, reading backward from
//! the end so that the cost does not grow with the size of the log.

use std::collections::HashSet;

use super::record::decode;
use super::segment::{BackwardLines, FileId, Segment};

/// Number of records read past the Nth line from the end while a partial
/// record of an earlier stream may still continue an included line.
const CONTINUATION_LOOKBACK: usize = 1024;

/// Start position of a `--tail` read.
#[derive(Debug, Default)]
pub struct TailStart {
    /// Index of the first segment to read.
    pub segment: usize,
    /// Offset in that segment of the first record to read.
    pub offset: u64,
    /// Records after the start that belong to lines left out. They lie
    /// between partial records of a line that is printed.
    pub skip: HashSet<(FileId, u64)>,
}

/// Finds the start of the last `lines` lines of `segments` (oldest first).
///
/// A line is one record that ends with a newline, together with the
/// partial records of its stream right before it. The last record of a
/// stream counts as a line even without a newline. Records of stdout and
/// stderr interleave, so the partial records that start the first printed
/// line of one stream can come before complete lines of the other stream
/// that are left out: those go to [`TailStart::skip`].
pub fn find_tail_start(segments: &[Segment], lines: usize) -> std::io::Result<TailStart> {
    let mut start = match segments.last() {
        Some(segment) => TailStart {
            segment: segments.len() - 1,
            offset: segment.file.metadata()?.len(),
            skip: HashSet::new(),
        },
        None => return Ok(TailStart::default()),
    };
    let mut counted = 0;
    let mut seen_later = [false; 2];
    let mut line_included = [false; 2];
    let mut left_out = Vec::new();
    let mut lookback = 0;
    'segments: for (index, segment) in segments.iter().enumerate().rev() {
        let end = segment.file.metadata()?.len();
        let mut backward = BackwardLines::new(&segment.file, end)?;
        if index == segments.len() - 1 {
            // An unfinished last line is read forward once complete.
            start.offset = backward_end(&segment.file, end)?;
        }
        while let Some((offset, line)) = backward.next_line()? {
            if counted == lines
                && (!line_included.contains(&true) || lookback == CONTINUATION_LOOKBACK)
            {
                break 'segments;
            }
            let Some(record) = decode(&line) else {
                continue;
            };
            let stream = record.stream.index();
            let ends_line = record.ends_line() || !seen_later[stream];
            seen_later[stream] = true;
            if ends_line {
                line_included[stream] = counted < lines;
                if counted < lines {
                    counted += 1;
                }
            }
            if counted == lines {
                lookback += 1;
            }
            if line_included[stream] {
                start.segment = index;
                start.offset = offset;
            } else {
                left_out.push((segment.id, index, offset));
            }
        }
    }
    // Only records after the start need skipping.
    start.skip = left_out
        .into_iter()
        .filter(|&(_, index, offset)| (index, offset) > (start.segment, start.offset))
        .map(|(id, _, offset)| (id, offset))
        .collect();
    Ok(start)
}

/// Returns the offset just after the last newline before `end`.
fn backward_end(file: &std::fs::File, end: u64) -> std::io::Result<u64> {
    let mut lines = BackwardLines::new(file, end)?;
    Ok(match lines.next_line()? {
        Some((offset, line)) => offset + line.len() as u64 + 1,
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::logs::record::{encode, Stream};
    use crate::logs::segment::open_segments;
    use crate::logs::writer::rotated_path;

    fn write_log(path: &std::path::Path, records: &[(Stream, &str)]) {
        let mut text = Vec::new();
        for (stream, log) in records {
            encode(&mut text, *stream, log.as_bytes(), Utc::now());
        }
        std::fs::write(path, text).unwrap();
    }

    /// Returns the logs of the records printed for the tail.
    fn tail(path: &std::path::Path, lines: usize) -> Vec<String> {
        let segments = open_segments(path).unwrap();
        let start = find_tail_start(&segments, lines).unwrap();
        let mut logs = Vec::new();
        let mut buffer = Vec::new();
        for (index, mut segment) in segments.into_iter().enumerate().skip(start.segment) {
            if index == start.segment {
                segment.offset = start.offset;
            }
            segment
                .read_lines(&mut buffer, |id, offset, line| {
                    if !start.skip.contains(&(id, offset)) {
                        logs.push(decode(line).unwrap().log.into_owned());
                    }
                    Ok(())
                })
                .unwrap();
        }
        logs
    }

    #[test]
    fn tail_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write_log(
            &rotated_path(&path, 2),
            &[(Stream::Stdout, "1\n"), (Stream::Stdout, "2\n")],
        );
        write_log(&rotated_path(&path, 1), &[(Stream::Stdout, "3\n")]);
        write_log(&path, &[(Stream::Stderr, "4\n"), (Stream::Stdout, "5\n")]);
        assert_eq!(tail(&path, 2), ["4\n", "5\n"]);
        assert_eq!(tail(&path, 4), ["2\n", "3\n", "4\n", "5\n"]);
        assert_eq!(tail(&path, 10), ["1\n", "2\n", "3\n", "4\n", "5\n"]);
        assert!(tail(&path, 0).is_empty());
    }

    #[test]
    fn tail_keeps_partial_records_of_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write_log(
            &path,
            &[
                (Stream::Stdout, "old\n"),
                (Stream::Stdout, "long "),
                (Stream::Stderr, "left out\n"),
                (Stream::Stderr, "err\n"),
                (Stream::Stdout, "line\n"),
            ],
        );
        assert_eq!(tail(&path, 2), ["long ", "err\n", "line\n"]);
        assert_eq!(tail(&path, 1), ["long ", "line\n"]);
    }

    #[test]
    fn tail_counts_unfinished_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write_log(
            &path,
            &[
                (Stream::Stdout, "a\n"),
                (Stream::Stdout, "b\n"),
                (Stream::Stdout, "prompt $ "),
            ],
        );
        assert_eq!(tail(&path, 1), ["prompt $ "]);
        assert_eq!(tail(&path, 2), ["b\n", "prompt $ "]);
    }

    #[test]
    fn tail_ignores_torn_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write_log(&path, &[(Stream::Stdout, "a\n"), (Stream::Stdout, "b\n")]);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"{\"log\":\"c").unwrap();
        assert_eq!(tail(&path, 1), ["b\n"]);
    }
}
