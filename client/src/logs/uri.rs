//! The `binary://` URI that makes a shim run `hullctl logger`, and the
//! arguments that the logger gets from it.
//!
//! The shim turns `binary:///usr/bin/hullctl?logger=/l/c-json.log&max-file=3`
//! into the command `/usr/bin/hullctl logger /l/c-json.log max-file 3`, with
//! every key and value percent-decoded and in query order. So the first
//! pair names the subcommand and the log, and the rest are options. The
//! exit command is one `exit-arg` pair per element, since a key may repeat.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::options::{parse_size, LogOptions};

/// The subcommand of hullctl that runs the logger.
pub const LOGGER_SUBCOMMAND: &str = "logger";

const MAX_SIZE: &str = "max-size";
const MAX_FILE: &str = "max-file";
const EXIT_ARG: &str = "exit-arg";

/// Configuration of a logger, parsed from its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerConfig {
    pub log_path: PathBuf,
    pub options: LogOptions,
    /// Program and arguments run once the container's output has ended,
    /// or empty for none.
    pub exit_command: Vec<String>,
}

/// Builds the `binary://` stdio URI that runs `exe logger` to write
/// `log_path` with `options`, and to run `exit_command` (a program and its
/// arguments) once the container's output ends.
///
/// Fails when a path is relative or not UTF-8: the shim requires an
/// absolute program path and decodes the URI to UTF-8.
pub fn logger_uri(
    exe: &Path,
    log_path: &Path,
    options: &LogOptions,
    exit_command: Option<&[String]>,
) -> anyhow::Result<String> {
    let text = |path: &Path, what: &str| -> anyhow::Result<String> {
        let text = path
            .to_str()
            .with_context(|| format!("{what} {} is not valid UTF-8", path.display()))?;
        if !path.is_absolute() {
            bail!("{what} {text} must be an absolute path");
        }
        Ok(text.to_owned())
    };
    let exe = text(exe, "logger program")?;
    let log_path = text(log_path, "log path")?;
    let mut uri = String::from("binary://");
    encode_into(&mut uri, &exe, true);
    let max_size = match options.max_size {
        Some(bytes) => bytes.to_string(),
        None => "-1".to_owned(),
    };
    let max_file = options.max_file.to_string();
    let mut pairs = vec![
        (LOGGER_SUBCOMMAND, log_path.as_str()),
        (MAX_SIZE, max_size.as_str()),
        (MAX_FILE, max_file.as_str()),
    ];
    for arg in exit_command.unwrap_or_default() {
        pairs.push((EXIT_ARG, arg));
    }
    for (index, (key, value)) in pairs.into_iter().enumerate() {
        uri.push(if index == 0 { '?' } else { '&' });
        encode_into(&mut uri, key, false);
        uri.push('=');
        encode_into(&mut uri, value, false);
    }
    Ok(uri)
}

/// Appends `text` percent-encoded: every byte but unreserved characters
/// (RFC 3986), and `/` in a path, becomes `%XX`. The shim decodes `+` in a
/// query to a space, so a `+` is encoded too.
fn encode_into(uri: &mut String, text: &str, path: bool) {
    for byte in text.bytes() {
        let plain = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (path && byte == b'/');
        if plain {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
}

impl LoggerConfig {
    /// Parses the arguments after `hullctl logger`: the log path, then
    /// key and value pairs.
    pub fn from_args(log_path: PathBuf, pairs: &[String]) -> anyhow::Result<LoggerConfig> {
        if !log_path.is_absolute() {
            bail!(
                "invalid log path {}: it must be absolute",
                log_path.display()
            );
        }
        if !pairs.len().is_multiple_of(2) {
            bail!(
                "logger option {:?} has no value: options come as KEY VALUE pairs",
                pairs[pairs.len() - 1]
            );
        }
        let mut config = LoggerConfig {
            log_path,
            options: LogOptions::default(),
            exit_command: Vec::new(),
        };
        for pair in pairs.chunks(2) {
            let (key, value) = (pair[0].as_str(), pair[1].as_str());
            match key {
                MAX_SIZE => config.options.max_size = parse_size(value)?,
                EXIT_ARG => config.exit_command.push(value.to_owned()),
                _ => config.options.set(key, value).with_context(|| {
                    format!("invalid logger option {key:?}: expected {MAX_SIZE}, {MAX_FILE} or {EXIT_ARG}")
                })?,
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a `binary://` URI into a command line by the rules of the
    /// shim's parser (`shim/src/logger.rs`): percent escapes everywhere,
    /// and `+` as a space in the query.
    fn shim_command(uri: &str) -> (String, Vec<String>) {
        fn decode(text: &str, plus_is_space: bool) -> String {
            let bytes = text.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'%' => {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                        i += 3;
                    }
                    b'+' if plus_is_space => {
                        out.push(b' ');
                        i += 1;
                    }
                    byte => {
                        out.push(byte);
                        i += 1;
                    }
                }
            }
            String::from_utf8(out).unwrap()
        }
        let rest = uri.strip_prefix("binary://").unwrap();
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut args = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            args.push(decode(key, true));
            args.push(decode(value, true));
        }
        (decode(path, false), args)
    }

    fn round_trip(exe: &str, log: &str, options: LogOptions, exit: Option<&[String]>) {
        let uri = logger_uri(Path::new(exe), Path::new(log), &options, exit).unwrap();
        assert_eq!(uri.matches('?').count(), 1, "{uri}");
        assert!(!uri.contains([' ', '#', '+']), "{uri}");
        let (program, args) = shim_command(&uri);
        assert_eq!(program, exe, "{uri}");
        assert_eq!(args[0], LOGGER_SUBCOMMAND, "{uri}");
        let config = LoggerConfig::from_args(PathBuf::from(&args[1]), &args[2..]).unwrap();
        assert_eq!(config.log_path, Path::new(log), "{uri}");
        assert_eq!(config.options, options, "{uri}");
        assert_eq!(config.exit_command, exit.unwrap_or_default(), "{uri}");
    }

    #[test]
    fn uri_round_trip_plain() {
        round_trip(
            "/usr/bin/hullctl",
            "/var/lib/hull/containers/abc/abc-json.log",
            LogOptions::default(),
            None,
        );
    }

    #[test]
    fn uri_round_trip_odd_characters() {
        let exit: Vec<String> = [
            "/opt/my tools/hull ctl",
            "--root",
            "/var/lib/h ull",
            "a&b=c",
            "100%",
            "plus+sign",
            "?query#frag",
            "",
            "ünïcødé ✓",
        ]
        .map(String::from)
        .to_vec();
        round_trip(
            "/opt/my tools/ctl+1?x=%20&y#z",
            "/var/lib/ℌull/containers/a b/a%b&c=d+e-json.log",
            LogOptions {
                max_size: None,
                max_file: 1,
            },
            Some(&exit),
        );
    }

    #[test]
    fn uri_round_trip_sizes() {
        for max_size in [Some(1), Some(20 << 20), Some(u64::MAX), None] {
            let options = LogOptions {
                max_size,
                max_file: 7,
            };
            round_trip("/h", "/l", options, Some(&["/bin/true".to_owned()]));
        }
    }

    #[test]
    fn uri_escapes_reserved_characters() {
        let uri = logger_uri(
            Path::new("/a b/c"),
            Path::new("/x+y&z"),
            &LogOptions::default(),
            None,
        )
        .unwrap();
        assert_eq!(
            uri,
            "binary:///a%20b/c?logger=%2Fx%2By%26z&max-size=20971520&max-file=5"
        );
    }

    #[test]
    fn relative_paths_rejected() {
        let options = LogOptions::default();
        let error = logger_uri(Path::new("hullctl"), Path::new("/l"), &options, None);
        assert!(error.unwrap_err().to_string().contains("absolute"));
        let error = logger_uri(Path::new("/h"), Path::new("l.log"), &options, None);
        assert!(error.unwrap_err().to_string().contains("absolute"));
    }

    #[test]
    fn non_utf8_path_rejected() {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/l/\xff.log"));
        let error = logger_uri(Path::new("/h"), path, &LogOptions::default(), None);
        assert!(error.unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn bad_logger_args_rejected() {
        let log = PathBuf::from("/l");
        let odd = ["max-file".to_owned()];
        let error = LoggerConfig::from_args(log.clone(), &odd).unwrap_err();
        assert!(error.to_string().contains("no value"), "{error}");
        let unknown = ["colour".to_owned(), "red".to_owned()];
        let error = LoggerConfig::from_args(log.clone(), &unknown).unwrap_err();
        assert!(
            format!("{error:#}").contains("invalid logger option \"colour\""),
            "{error:#}"
        );
        let error = LoggerConfig::from_args(PathBuf::from("rel"), &[]).unwrap_err();
        assert!(error.to_string().contains("absolute"), "{error}");
    }
}
