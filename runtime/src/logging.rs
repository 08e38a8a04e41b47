//! The runtime's log, in the line formats runc writes: logrus text
//! (`time="..." level=error msg="..."`) or JSON (`{"level","msg","time"}`),
//! which containerd and podman parse from the `--log` file.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Line format of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

enum Sink {
    Stderr,
    File(File),
}

struct LogLayer {
    sink: Mutex<Sink>,
    format: Format,
    max_level: Level,
}

/// Collects the message and the fields of one event.
#[derive(Default)]
struct Fields {
    message: String,
    extra: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.extra.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.extra.push((field.name(), format!("{value:?}")));
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Formats one log line, without the trailing newline.
fn format_line(format: Format, level: &Level, time: &str, fields: &Fields) -> String {
    let level = level_name(level);
    match format {
        Format::Json => {
            let mut object = serde_json::Map::new();
            object.insert("level".into(), level.into());
            object.insert("msg".into(), fields.message.clone().into());
            object.insert("time".into(), time.into());
            for (name, value) in &fields.extra {
                object.insert((*name).into(), value.clone().into());
            }
            serde_json::Value::Object(object).to_string()
        }
        Format::Text => {
            let mut line = format!("time={time:?} level={level} msg={}", quote(&fields.message));
            for (name, value) in &fields.extra {
                let _ = write!(line, " {name}={}", quote(value));
            }
            line
        }
    }
}

/// Quotes a value as logrus does: JSON string escaping.
fn quote(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        *metadata.level() <= self.max_level
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let line = format_line(self.format, event.metadata().level(), &time, &fields);
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        // A log line that cannot be written has nowhere else to go.
        let _ = match &mut *sink {
            Sink::Stderr => writeln!(io::stderr(), "{line}"),
            Sink::File(file) => writeln!(file, "{line}"),
        };
    }
}

/// Destination of the command's errors besides the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorEcho {
    /// The log is stderr already.
    None,
    /// The log is a file: the error is also printed plain on stderr.
    Stderr,
}

/// Installs the global log: to `path` (appended) or stderr, at debug level
/// with `debug`, else info.
pub fn init(path: Option<&Path>, format: Format, debug: bool) -> io::Result<ErrorEcho> {
    let (sink, echo) = match path {
        Some(path) if path != Path::new("/dev/stderr") => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("open log {}: {e}", path.display()))
                })?;
            (Sink::File(file), ErrorEcho::Stderr)
        }
        _ => (Sink::Stderr, ErrorEcho::None),
    };
    let layer = LogLayer {
        sink: Mutex::new(sink),
        format,
        max_level: if debug { Level::DEBUG } else { Level::INFO },
    };
    let subscriber = tracing_subscriber::registry().with(layer);
    // Only fails when a subscriber is installed already, which keeps that one.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(echo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str) -> Fields {
        Fields {
            message: message.into(),
            extra: vec![],
        }
    }

    #[test]
    fn text_line_matches_logrus() {
        let line = format_line(
            Format::Text,
            &Level::ERROR,
            "2026-01-02T03:04:05Z",
            &fields("container \"a\" does not exist"),
        );
        assert_eq!(
            line,
            r#"time="2026-01-02T03:04:05Z" level=error msg="container \"a\" does not exist""#
        );
    }

    #[test]
    fn json_line_has_runc_fields() {
        let line = format_line(Format::Json, &Level::WARN, "T", &fields("m"));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "warning");
        assert_eq!(value["msg"], "m");
        assert_eq!(value["time"], "T");
    }
}
