//! The time forms that `logs --since` and `--until` take, as docker
//! accepts them.

use anyhow::bail;
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Parses a `--since` or `--until` value: a duration before `now` in Go's
/// syntax (`10m`, `1h30m`, `1.5h`), a Unix timestamp with optional
/// nanoseconds (`1700000000.5`), an RFC 3339 time, or a date and time
/// without a zone (`2026-12-04T22:00:00`, `2026-12-04`) in local time.
pub fn parse_time(value: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let invalid = || {
        format!(
            "invalid time {value:?}: expected an RFC 3339 time such as \
             2026-12-04T22:00:00Z, a Unix timestamp, or a duration before now \
             such as 10m or 1h30m"
        )
    };
    let text = value.trim();
    if let Some(duration) = parse_go_duration(text) {
        return match chrono::Duration::from_std(duration)
            .ok()
            .and_then(|duration| now.checked_sub_signed(duration))
        {
            Some(time) => Ok(time),
            None => bail!("invalid time {value:?}: the duration reaches before year 0"),
        };
    }
    if let Some(time) = parse_unix(text) {
        return Ok(time);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.to_utc());
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
        });
    let Some(naive) = naive else {
        bail!(invalid());
    };
    match Local.from_local_datetime(&naive).earliest() {
        Some(time) => Ok(time.to_utc()),
        None => bail!("invalid time {value:?}: it does not exist in the local time zone"),
    }
}

/// Parses `seconds[.fraction]` since the Unix epoch.
fn parse_unix(text: &str) -> Option<DateTime<Utc>> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    if seconds.is_empty() || fraction.len() > 9 {
        return None;
    }
    if !(seconds.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    DateTime::from_timestamp(seconds.parse().ok()?, nanos)
}

/// Parses a non-negative duration as Go's `time.ParseDuration` does: a
/// sequence of decimal numbers, each with a unit of ns, us (or µs), ms, s,
/// m or h. A lone `0` is zero.
fn parse_go_duration(text: &str) -> Option<std::time::Duration> {
    if text == "0" {
        return Some(std::time::Duration::ZERO);
    }
    if text.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() || number == "." {
            return None;
        }
        let number: f64 = number.parse().ok()?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds;
        rest = after;
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-04T22:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn parse(text: &str) -> String {
        super::super::record::format_time(parse_time(text, now()).unwrap())
    }

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(parse("10m"), "2026-12-04T21:50:00.000000000Z");
        assert_eq!(parse("1h30m"), "2026-12-04T20:30:00.000000000Z");
        assert_eq!(parse("1.5h"), "2026-12-04T20:30:00.000000000Z");
        assert_eq!(parse("90s"), "2026-12-04T21:58:30.000000000Z");
        assert_eq!(parse("250ms"), "2026-12-04T21:59:59.750000000Z");
        assert_eq!(parse("0"), "2026-12-04T22:00:00.000000000Z");
    }

    #[test]
    fn unix_timestamps_parsed() {
        assert_eq!(parse("1700000000"), "2023-11-14T22:13:20.000000000Z");
        assert_eq!(parse("1700000000.5"), "2023-11-14T22:13:20.500000000Z");
        assert_eq!(
            parse("1700000000.000000001"),
            "2023-11-14T22:13:20.000000001Z"
        );
    }

    #[test]
    fn rfc3339_times_parsed() {
        assert_eq!(
            parse("2026-12-04T23:00:00.25+01:00"),
            "2026-12-04T22:00:00.250000000Z"
        );
        assert_eq!(
            parse("2026-12-04T22:00:00Z"),
            "2026-12-04T22:00:00.000000000Z"
        );
    }

    #[test]
    fn zoneless_times_are_local() {
        let expected = Local
            .with_ymd_and_hms(2026, 12, 4, 8, 30, 0)
            .unwrap()
            .to_utc();
        assert_eq!(parse_time("2026-12-04T08:30:00", now()).unwrap(), expected);
        assert_eq!(parse_time("2026-12-04T08:30", now()).unwrap(), expected);
        let midnight = Local.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap();
        assert_eq!(parse_time("2026-12-04", now()).unwrap(), midnight.to_utc());
    }

    #[test]
    fn bad_times_rejected() {
        for text in ["", "soon", "10x", "-10m", "1h-5m", "2026-13-01", "1.2.3"] {
            let error = parse_time(text, now()).unwrap_err().to_string();
            assert!(error.contains("invalid time"), "{text}: {error}");
        }
    }
}
