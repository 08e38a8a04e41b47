//! Signal names and numbers as `kill` accepts them.

use nix::sys::signal::Signal;

use crate::{Error, Result};

/// Parses `TERM`, `SIGTERM`, `term` or `15` into a signal.
pub fn parse(raw: &str) -> Result<Signal> {
    let unknown = || Error::UnknownSignal(raw.to_string());
    if let Ok(number) = raw.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| unknown());
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    // `SIGIOT` and `SIGPOLL` are aliases that nix does not list by name.
    let name = match name {
        "IOT" => "ABRT",
        "POLL" => "IO",
        other => other,
    };
    format!("SIG{name}")
        .parse::<Signal>()
        .map_err(|_| unknown())
}

/// Parses a `kill` argument like [`parse`], and also accepts `0`, for which
/// it returns `None`: kill(2) then sends nothing and only checks that the
/// process exists and may be signalled.
pub fn parse_for_kill(raw: &str) -> Result<Option<Signal>> {
    if raw == "0" {
        return Ok(None);
    }
    parse(raw).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        for raw in ["KILL", "SIGKILL", "kill", "9", "sigkill"] {
            assert_eq!(parse(raw).unwrap(), Signal::SIGKILL, "{raw}");
        }
        assert_eq!(parse("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("IOT").unwrap(), Signal::SIGABRT);
        assert_eq!(parse("WINCH").unwrap(), Signal::SIGWINCH);
    }

    #[test]
    fn kill_accepts_signal_zero() {
        assert_eq!(parse_for_kill("0").unwrap(), None);
        assert_eq!(parse_for_kill("KILL").unwrap(), Some(Signal::SIGKILL));
        assert_eq!(parse_for_kill("15").unwrap(), Some(Signal::SIGTERM));
        for raw in ["", "FOO", "SIG0", "00", "-0", "65"] {
            assert!(parse_for_kill(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn rejects_unknown_signals() {
        for raw in ["", "FOO", "SIG", "0", "65", "-1", "9x"] {
            assert!(parse(raw).is_err(), "{raw}");
        }
    }
}
