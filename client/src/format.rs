//! Human-readable sizes, ages and image names for `hullctl images`.

use std::time::{SystemTime, UNIX_EPOCH};

use hull_images::Reference;

/// Formats `bytes` in decimal units with three significant digits, as
/// docker does: `4.26MB`, `117MB`, `1.2GB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let text = if value >= 100.0 || unit == 0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

/// Formats the time since `seconds` after the Unix epoch: `3 minutes ago`.
pub fn human_age(seconds: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0);
    let age = now.saturating_sub(seconds).max(0);
    let (count, unit) = match age {
        0..60 => return String::from("Less than a minute ago"),
        60..3600 => (age / 60, "minute"),
        3600..86_400 => (age / 3600, "hour"),
        86_400..604_800 => (age / 86_400, "day"),
        604_800..2_592_000 => (age / 604_800, "week"),
        2_592_000..31_536_000 => (age / 2_592_000, "month"),
        _ => (age / 31_536_000, "year"),
    };
    if count == 1 {
        let article = if unit == "hour" { "An" } else { "A" };
        format!("{article} {unit} ago")
    } else {
        format!("{count} {unit}s ago")
    }
}

/// Splits a stored image name into the REPOSITORY and TAG columns.
pub fn repository_and_tag(name: &str) -> (String, String) {
    match name.parse::<Reference>() {
        Ok(reference) => {
            let full = reference.name();
            let repository = match full.strip_prefix("docker.io/") {
                Some(path) => path.strip_prefix("library/").unwrap_or(path),
                None => &full,
            };
            let tag = reference.tag().unwrap_or("<none>");
            (repository.to_string(), tag.to_string())
        }
        Err(_) => (name.to_string(), String::from("<none>")),
    }
}

/// Returns the first 12 hex digits of a digest, docker's short image id.
pub fn short_id(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_size_matches_docker() {
        let cases = [
            (0, "0B"),
            (999, "999B"),
            (4_261_000, "4.26MB"),
            (117_000_000, "117MB"),
            (1_200_000_000, "1.2GB"),
            (10_000, "10kB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(human_size(bytes), expected, "{bytes} bytes");
        }
    }

    #[test]
    fn repository_and_tag_split() {
        assert_eq!(
            repository_and_tag("docker.io/library/busybox:1.36"),
            (String::from("busybox"), String::from("1.36"))
        );
        assert_eq!(
            repository_and_tag("127.0.0.1:5000/test/busybox:latest"),
            (
                String::from("127.0.0.1:5000/test/busybox"),
                String::from("latest")
            )
        );
    }

    #[test]
    fn short_id_strips_algorithm() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
