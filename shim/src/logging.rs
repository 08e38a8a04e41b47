//! Shim logs in logfmt (`time=... level=info msg="..." key=value`), written
//! to the `log` FIFO that containerd creates in the bundle and copies into
//! its own log.

use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Mutex;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as logfmt lines.
pub struct Logfmt;

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

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
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
        writeln!(
            writer,
            "time={time} level={level} msg={} runtime=io.containerd.hull.v2{}",
            quote(&fields.message),
            fields.pairs
        )
    }
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
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .event_format(Logfmt);
    let result = match output {
        Some(file) => builder.with_writer(Mutex::new(file)).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    if let Err(error) = result {
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
