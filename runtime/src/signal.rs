//! Signal names and numbers as `kill` accepts them.

use std::fmt;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::{Error, Result};

/// A signal for kill(2): 0 (a check that the process exists), a standard
/// signal, or a real-time one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalNumber(pub i32);

impl SignalNumber {
    pub const KILL: SignalNumber = SignalNumber(libc::SIGKILL);

    /// Sends the signal to `pid`.
    pub fn send(self, pid: Pid) -> nix::Result<()> {
        // SAFETY: kill takes two integers and touches no memory.
        nix::errno::Errno::result(unsafe { libc::kill(pid.as_raw(), self.0) }).map(drop)
    }
}

impl fmt::Display for SignalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Signal::try_from(self.0) {
            Ok(signal) => write!(f, "{signal}"),
            Err(_) => write!(f, "signal {}", self.0),
        }
    }
}

/// Parses `TERM`, `SIGTERM`, `term`, `15`, `0`, `RTMIN+3` or `SIGRTMAX`.
pub fn parse(raw: &str) -> Result<SignalNumber> {
    let unknown = || Error::UnknownSignal(raw.to_string());
    let rtmin = libc::SIGRTMIN();
    let rtmax = libc::SIGRTMAX();
    if let Ok(number) = raw.parse::<i32>() {
        return if (0..=rtmax).contains(&number) {
            Ok(SignalNumber(number))
        } else {
            Err(unknown())
        };
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = |base: i32, offset: &str, sign: i32| -> Result<SignalNumber> {
        let offset: i32 = if offset.is_empty() {
            0
        } else {
            offset.parse().map_err(|_| unknown())?
        };
        let number = base + sign * offset;
        if (rtmin..=rtmax).contains(&number) {
            Ok(SignalNumber(number))
        } else {
            Err(unknown())
        }
    };
    if let Some(offset) = name.strip_prefix("RTMIN") {
        return realtime(rtmin, offset.strip_prefix('+').unwrap_or(offset), 1);
    }
    if let Some(offset) = name.strip_prefix("RTMAX") {
        return realtime(rtmax, offset.strip_prefix('-').unwrap_or(offset), -1);
    }
    // `SIGIOT` and `SIGPOLL` are aliases that nix does not list by name.
    let name = match name {
        "IOT" => "ABRT",
        "POLL" => "IO",
        other => other,
    };
    format!("SIG{name}")
        .parse::<Signal>()
        .map(|signal| SignalNumber(signal as i32))
        .map_err(|_| unknown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        for raw in ["KILL", "SIGKILL", "kill", "9", "sigkill"] {
            assert_eq!(parse(raw).unwrap(), SignalNumber::KILL, "{raw}");
        }
        assert_eq!(parse("TERM").unwrap().0, libc::SIGTERM);
        assert_eq!(parse("IOT").unwrap().0, libc::SIGABRT);
        assert_eq!(parse("WINCH").unwrap().0, libc::SIGWINCH);
    }

    #[test]
    fn parses_zero_and_realtime() {
        assert_eq!(parse("0").unwrap().0, 0);
        assert_eq!(parse("RTMIN").unwrap().0, libc::SIGRTMIN());
        assert_eq!(parse("SIGRTMIN+2").unwrap().0, libc::SIGRTMIN() + 2);
        assert_eq!(parse("RTMAX-1").unwrap().0, libc::SIGRTMAX() - 1);
        assert_eq!(parse("40").unwrap().0, 40);
    }

    #[test]
    fn rejects_unknown_signals() {
        for raw in [
            "", "FOO", "SIG", "65", "99", "-1", "9x", "RTMIN+99", "RTMAX-x",
        ] {
            assert!(parse(raw).is_err(), "{raw}");
        }
    }
}
