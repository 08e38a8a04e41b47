//! Signal names and numbers as `kill -s` and `--stop-signal` take them.

use std::str::FromStr;

use anyhow::bail;
use nix::sys::signal::Signal;

/// Parses `TERM`, `SIGTERM`, `sigterm` or `15` into a signal number.
pub fn parse(value: &str) -> anyhow::Result<u32> {
    if let Ok(number) = value.parse::<i32>() {
        if Signal::try_from(number).is_ok()
            || (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&number)
        {
            return Ok(number as u32);
        }
        bail!("invalid signal {value}: no such signal number");
    }
    let upper = value.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match Signal::from_str(&name) {
        Ok(signal) => Ok(signal as u32),
        Err(_) => {
            bail!("invalid signal {value:?}: use a name such as SIGTERM or KILL, or a number")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parsed() {
        assert_eq!(parse("SIGTERM").unwrap(), 15);
        assert_eq!(parse("kill").unwrap(), 9);
        assert_eq!(parse("HUP").unwrap(), 1);
        assert_eq!(parse("10").unwrap(), 10);
        for bad in ["", "SIGFOO", "0x9", "999"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
