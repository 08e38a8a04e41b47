//! Rotation options of a container's json-file log.

use anyhow::{bail, Context};

/// Rotation limits of a container's log: the maximum size of a file and
/// the number of files kept.
///
/// The defaults, 20 MiB and 5 files, are those of docker's `local` log
/// driver. Docker's json-file driver keeps one file without a size limit by
/// default, which lets a chatty container fill the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Size in bytes past which the current file rotates, or `None` for
    /// one file without a limit.
    pub max_size: Option<u64>,
    /// Number of files kept, the current one included. With 1, the current
    /// file is truncated when it reaches `max_size`.
    pub max_file: u32,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            max_size: Some(20 * 1024 * 1024),
            max_file: 5,
        }
    }
}

impl LogOptions {
    /// Parses docker's `--log-opt KEY=VALUE` options of the json-file
    /// driver (`max-size`, `max-file`) over the defaults.
    pub fn from_log_opts<S: AsRef<str>>(opts: &[S]) -> anyhow::Result<LogOptions> {
        let mut options = LogOptions::default();
        for opt in opts {
            let opt = opt.as_ref();
            let Some((key, value)) = opt.split_once('=') else {
                bail!("invalid log option {opt:?}: expected KEY=VALUE, such as max-size=10m");
            };
            options.set(key, value)?;
        }
        Ok(options)
    }

    /// Sets the option `key` from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        match key {
            "max-size" => self.max_size = parse_size(value)?,
            "max-file" => self.max_file = parse_max_file(value)?,
            _ => bail!("unknown log option {key:?}: the json-file log takes max-size and max-file"),
        }
        Ok(())
    }
}

/// Parses a max-size: a number of bytes with an optional binary unit (`k`,
/// `m`, `g`, `t`, optionally followed by `b` or `ib`, as in `20m` or
/// `1.5GiB`), or `-1` for no limit.
pub fn parse_size(value: &str) -> anyhow::Result<Option<u64>> {
    let invalid = || {
        format!(
            "invalid max-size {value:?}: expected bytes with an optional k, m or g \
             suffix, such as 20m, or -1 for no limit"
        )
    };
    let text = value.trim();
    if text == "-1" {
        return Ok(None);
    }

    let digits = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: f64 = number.parse().ok().with_context(invalid)?;

    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => bail!(invalid()),
    };

    let bytes = number * scale as f64;
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        bail!(invalid());
    }
    Ok(Some(bytes as u64))
}

fn parse_max_file(value: &str) -> anyhow::Result<u32> {
    match value.trim().parse::<u32>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => bail!("invalid max-file {value:?}: expected a whole number of files, 1 or more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_units_parsed() {
        let cases = [
            ("100", Some(100)),
            ("10k", Some(10 * 1024)),
            ("20m", Some(20 << 20)),
            ("20M", Some(20 << 20)),
            ("2g", Some(2 << 30)),
            ("1.5kb", Some(1536)),
            ("3 MiB", Some(3 << 20)),
            ("-1", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn bad_sizes_rejected() {
        for text in ["", "0", "m", "10x", "-5", "1.2.3k", "10 mb extra"] {
            let error = parse_size(text).unwrap_err().to_string();
            assert!(error.contains("invalid max-size"), "{text}: {error}");
        }
    }

    #[test]
    fn log_opts_override_defaults() {
        let options = LogOptions::from_log_opts(&["max-file=3"]).unwrap();
        assert_eq!(options.max_file, 3);
        assert_eq!(options.max_size, Some(20 << 20));
        let options = LogOptions::from_log_opts(&["max-size=-1", "max-file=1"]).unwrap();
        assert_eq!(options.max_size, None);
        assert_eq!(options.max_file, 1);
    }

    #[test]
    fn bad_log_opts_rejected() {
        let error = LogOptions::from_log_opts(&["max-file=0"]).unwrap_err();
        assert!(error.to_string().contains("max-file \"0\""), "{error}");
        let error = LogOptions::from_log_opts(&["compress=true"]).unwrap_err();
        assert!(error.to_string().contains("unknown log option"), "{error}");
        let error = LogOptions::from_log_opts(&["max-size"]).unwrap_err();
        assert!(error.to_string().contains("KEY=VALUE"), "{error}");
    }
}
