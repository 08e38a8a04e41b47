//! Captured result of one runtime command.

use std::fmt;

/// Exit status and output of a finished command.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// Exit code, or `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Signal that ended the process.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Returns the exit code.
    ///
    /// # Panics
    /// Panics when a signal ended the process.
    pub fn code(&self) -> i32 {
        match self.code {
            Some(code) => code,
            None => panic!("{self}\nwas ended by signal {:?}", self.signal),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Returns `self` after checking that the exit code is 0.
    ///
    /// # Panics
    /// Panics with the command, its exit status and its output otherwise.
    #[track_caller]
    pub fn expect_success(&self) -> &Output {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Returns `self` after checking that the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, Some(code), "unexpected exit status:\n{self}");
        self
    }

    /// Returns the lines of stderr that are not empty.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        match (self.code, self.signal) {
            (Some(code), _) => writeln!(f, "exit code: {code}")?,
            (None, Some(signal)) => writeln!(f, "killed by signal: {signal}")?,
            (None, None) => writeln!(f, "exit status unknown")?,
        }
        writeln!(f, "stdout:\n{}", self.stdout)?;
        write!(f, "stderr:\n{}", self.stderr)
    }
}
