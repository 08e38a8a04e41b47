//! One record of docker's json-file log format.
//!
//! Each line of a log file is a JSON object such as
//! `{"log":"hello\n","stream":"stdout","time":"2026-12-04T22:00:00.123456789Z"}`.
//! `log` holds up to [`MAX_RECORD_BYTES`] of output. A record whose `log`
//! does not end with a newline is a partial record: the next record of the
//! same stream continues its line.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Maximum number of output bytes in one record. Docker's log copier
/// (`daemon/logger/copier.go`) also splits longer lines into partial
/// records of 16 KiB.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// The output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// Index of the stream in per-stream arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A record as stored on disk.
#[derive(Serialize, Deserialize)]
struct RawRecord<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub log: Cow<'a, str>,
    pub stream: Stream,
    pub time: DateTime<Utc>,
}

impl Record<'_> {
    /// Returns true when the record ends its line, false for a partial
    /// record that the next record of its stream continues.
    pub fn ends_line(&self) -> bool {
        self.log.ends_with('\n')
    }
}

/// Decodes one line of a log file, without its newline. Returns `None` for
/// a line that is not a record, such as one cut short by a crash. A stream
/// other than `stderr` counts as stdout.
pub fn decode(line: &[u8]) -> Option<Record<'_>> {
    let raw: RawRecord = serde_json::from_slice(line).ok()?;
    let time = DateTime::parse_from_rfc3339(&raw.time).ok()?.to_utc();
    let stream = if raw.stream == "stderr" {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    Some(Record {
        log: raw.log,
        stream,
        time,
    })
}

/// Appends the record of `log` to `out` as one line. Bytes that are not
/// UTF-8 become U+FFFD, because a JSON string contains text only.
pub fn encode(out: &mut Vec<u8>, stream: Stream, log: &[u8], time: DateTime<Utc>) {
    let raw = RawRecord {
        log: String::from_utf8_lossy(log),
        stream: Cow::Borrowed(stream.name()),
        time: Cow::Owned(format_time(time)),
    };
    serde_json::to_writer(&mut *out, &raw).expect("serializing strings into a Vec cannot fail");
    out.push(b'\n');
}

/// Formats `time` as RFC 3339 in UTC with nine fraction digits, the form of
/// docker's `--timestamps` output.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let time = DateTime::parse_from_rfc3339("2026-12-04T22:00:00.123456789Z")
            .unwrap()
            .to_utc();
        let mut line = Vec::new();
        encode(&mut line, Stream::Stderr, b"a \"quoted\"\ttab\n", time);
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            "{\"log\":\"a \\\"quoted\\\"\\ttab\\n\",\"stream\":\"stderr\",\
             \"time\":\"2026-12-04T22:00:00.123456789Z\"}\n"
        );
        let record = decode(&line[..line.len() - 1]).unwrap();
        assert_eq!(record.log, "a \"quoted\"\ttab\n");
        assert_eq!(record.stream, Stream::Stderr);
        assert_eq!(record.time, time);
        assert!(record.ends_line());
    }

    #[test]
    fn invalid_utf8_replaced() {
        let mut line = Vec::new();
        encode(&mut line, Stream::Stdout, b"a\xffb", Utc::now());
        let record = decode(&line[..line.len() - 1]).unwrap();
        assert_eq!(record.log, "a\u{fffd}b");
        assert!(!record.ends_line());
    }

    #[test]
    fn docker_time_forms_decoded() {
        // Go's RFC3339Nano drops trailing zeros, and other writers use offsets.
        let line = br#"{"log":"x\n","stream":"stdout","time":"2026-12-04T23:00:00.5+01:00"}"#;
        let record = decode(line).unwrap();
        assert_eq!(format_time(record.time), "2026-12-04T22:00:00.500000000Z");
    }

    #[test]
    fn torn_line_rejected() {
        assert!(decode(br#"{"log":"x\n","stream":"std"#).is_none());
        assert!(decode(br#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#).is_none());
    }
}
