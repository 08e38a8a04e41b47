//! Parsers for the human-readable values of runc's flags: sizes such as
//! `64M` (go-units `RAMInBytes`) and Go durations such as `500ms`.

use std::time::Duration;

/// Parses a size in bytes with an optional binary unit, as go-units
/// `RAMInBytes` (v0.5, vendored by runc 1.1) does. The text is a decimal
/// number and an optional space. Then come an optional `k`, `m`, `g`, `t`
/// or `p` (any case, powers of 1024), an optional `i` and an optional `b`.
/// Fractions are truncated after the multiplication, so `1.5k` is 1536.
pub fn parse_ram_size(text: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{text}'");
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, mut rest) = text.split_at(digits_end);

    let starts_with_digit = number.starts_with(|c: char| c.is_ascii_digit());
    let well_formed = number.split('.').all(|part| !part.is_empty());
    if !starts_with_digit || !well_formed {
        return Err(invalid());
    }

    rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut multiplier: f64 = 1.0;
    if let Some(prefix) = rest.chars().next() {
        let power = match prefix.to_ascii_lowercase() {
            'k' => Some(1),
            'm' => Some(2),
            'g' => Some(3),
            't' => Some(4),
            'p' => Some(5),
            _ => None,
        };
        if let Some(power) = power {
            multiplier = 1024f64.powi(power);
            rest = &rest[1..];
        }
    }

    rest = rest.strip_prefix(['i', 'I']).unwrap_or(rest);
    rest = rest.strip_prefix(['b', 'B']).unwrap_or(rest);
    if !rest.is_empty() {
        return Err(invalid());
    }
    // go-units accepts "1.2.3" in its pattern and then fails to parse it.
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size: '{text}': {number:?} is not a number"))?;
    // `as` saturates at i64::MAX, as Go's conversion does on amd64.
    Ok((value * multiplier) as i64)
}

/// Parses a Go duration (`time.ParseDuration`): an optional sign, then one
/// or more decimal numbers, each with a unit of `ns`, `us` (or `µs`), `ms`,
/// `s`, `m` or `h`, such as `1h30m` or `0.5s`. A bare `0` is zero.
/// Negative durations are rejected, since no caller accepts them.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{text}\""))?;
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{text}\""
                ))
            }
        };
        total_ns += value * scale;
        rest = next;
    }
    if total_ns > i64::MAX as f64 {
        return Err(invalid());
    }
    if negative && total_ns > 0.0 {
        return Err(format!("duration {text} is negative"));
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_size_units() {
        let cases = [
            ("0", 0),
            ("1024", 1024),
            ("64M", 64 << 20),
            ("64m", 64 << 20),
            ("64MB", 64 << 20),
            ("64MiB", 64 << 20),
            ("64mib", 64 << 20),
            ("2 g", 2 << 30),
            ("1k", 1024),
            ("1.5k", 1536),
            ("3b", 3),
            ("64 ", 64),
            ("1t", 1 << 40),
            ("1p", 1 << 50),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_ram_size(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn ram_size_rejects_garbage() {
        for text in [
            "", "M", "-1", "64X", "64  ", "64MBB", "1.2.3", ".5", "5.", "0x10",
        ] {
            assert!(parse_ram_size(text).is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn go_duration_units() {
        let cases = [
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("500ms", Duration::from_millis(500)),
            ("200ms", Duration::from_millis(200)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("+1s", Duration::from_secs(1)),
            ("-0s", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_go_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn go_duration_rejects_garbage() {
        for text in ["", "5", "s", "1x", "1.2.3s", "-1s", "1s5", ".s", "10 s"] {
            assert!(parse_go_duration(text).is_err(), "{text} was accepted");
        }
    }
}
