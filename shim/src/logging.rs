//! Shim logs in logfmt (`time=... level=info msg="..." key=value`), written
//! to the `log` FIFO that containerd creates in the bundle and copies into
//! its own log.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{span, Event, Level, Metadata, Subscriber};

/// The global subscriber: writes each event as one logfmt line and ignores
/// spans.
pub struct Logfmt {
    max_level: Level,
    output: Mutex<Box<dyn Write + Send>>,
    next_span_id: AtomicU64,
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            let _ = write!(self.pairs, " {}={}", field.name(), quote(&value));
        }
    }
}

/// Quotes a logfmt value when it is empty or contains spaces, quotes or `=`.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '=' && !c.is_control());
    if plain {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

impl Logfmt {
    /// Formats `event` as one logfmt line with its newline.
    fn format(event: &Event<'_>) -> String {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let time = humantime_rfc3339(std::time::SystemTime::now());
        format!(
            "time={time} level={level} msg={} runtime=io.containerd.hull.v2{}\n",
            quote(&fields.message),
            fields.pairs
        )
    }
}

impl Subscriber for Logfmt {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // tracing orders levels by verbosity: ERROR < WARN < ... < TRACE.
        *metadata.level() <= self.max_level
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max_level))
    }

    /// Spans only need distinct non-zero ids, because lines carry no span
    /// context.
    fn new_span(&self, _attributes: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(self.next_span_id.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _span: &span::Id, _values: &span::Record<'_>) {}

    fn record_follows_from(&self, _span: &span::Id, _follows: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let line = Logfmt::format(event);
        let mut output = self
            .output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = output.write_all(line.as_bytes());
    }

    fn enter(&self, _span: &span::Id) {}

    fn exit(&self, _span: &span::Id) {}
}

/// Formats a time as RFC 3339 in UTC with nanoseconds.
fn humantime_rfc3339(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs() as i64;
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_nanos()
    )
}

/// Opens the `log` FIFO for writing without blocking when containerd has
/// not opened its end. Returns `None` when there is no FIFO or no reader.
pub fn open_log_fifo(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    // Writes block from here on, so no log line is dropped.
    let flags = OFlag::from_bits_truncate(fcntl(file.as_fd(), FcntlArg::F_GETFL).ok()?);
    fcntl(file.as_fd(), FcntlArg::F_SETFL(flags & !OFlag::O_NONBLOCK)).ok()?;
    Some(file)
}

/// Installs the global subscriber: logfmt to `output` (or stderr), at
/// debug level with `debug`, else info.
pub fn init(output: Option<File>, debug: bool) {
    let output: Box<dyn Write + Send> = match output {
        Some(file) => Box::new(file),
        None => Box::new(std::io::stderr()),
    };
    let subscriber = Logfmt {
        max_level: if debug { Level::DEBUG } else { Level::INFO },
        output: Mutex::new(output),
        next_span_id: AtomicU64::new(1),
    };
    if let Err(error) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("failed to set up logging: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_spaces_are_quoted() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a=b"), "\"a=b\"");
    }

    #[test]
    fn times_format_as_rfc3339() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(humantime_rfc3339(time), "2023-11-14T22:13:20.000000005Z");
    }
}
