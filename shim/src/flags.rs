//! Command-line flags in the form containerd passes them to shims: Go's
//! `flag` package syntax (`-name value`, `-name=value`, `--name value`)
//! followed by an optional action (`start` or `delete`).

use std::path::PathBuf;

/// Parsed shim flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub namespace: String,
    pub id: String,
    /// containerd's gRPC socket (`-address`).
    pub address: String,
    /// containerd binary that publishes events (`-publish-binary`), unused
    /// because this shim publishes over `TTRPC_ADDRESS`.
    pub publish_binary: String,
    pub bundle: Option<PathBuf>,
    /// Path of the listening socket in serve mode. Without it, the sockets
    /// are fds 3 (ttrpc) and 4 (gRPC).
    pub socket: Option<String>,
    pub debug: bool,
    pub version: bool,
    pub info: bool,
    pub action: Option<String>,
}

/// Invalid command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagsError {
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("invalid boolean value {value:?} for -{flag}")]
    InvalidBool { flag: String, value: String },
    #[error("unexpected argument {0:?} after the action")]
    ExtraArgument(String),
}

impl Flags {
    /// Parses `args` (without the program name).
    pub fn parse<I, S>(args: I) -> Result<Flags, FlagsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut flags = Flags::default();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let Some(stripped) = arg.strip_prefix('-') else {
                if flags.action.is_some() {
                    return Err(FlagsError::ExtraArgument(arg));
                }
                flags.action = Some(arg);
                continue;
            };
            let stripped = stripped.strip_prefix('-').unwrap_or(stripped);
            let (name, inline) = match stripped.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (stripped.to_owned(), None),
            };
            match name.as_str() {
                "debug" | "v" | "version" | "info" => {
                    let value = match inline {
                        None => true,
                        Some(value) => parse_bool(&name, &value)?,
                    };
                    match name.as_str() {
                        "debug" => flags.debug = value,
                        "info" => flags.info = value,
                        _ => flags.version = value,
                    }
                }
                "namespace" | "id" | "address" | "publish-binary" | "bundle" | "socket" => {
                    let value = match inline {
                        Some(value) => value,
                        None => args
                            .next()
                            .ok_or_else(|| FlagsError::MissingValue(name.clone()))?,
                    };
                    match name.as_str() {
                        "namespace" => flags.namespace = value,
                        "id" => flags.id = value,
                        "address" => flags.address = value,
                        "publish-binary" => flags.publish_binary = value,
                        "bundle" => flags.bundle = Some(PathBuf::from(value)),
                        _ => flags.socket = Some(value),
                    }
                }
                _ => return Err(FlagsError::Unknown(name)),
            }
        }
        Ok(flags)
    }
}

fn parse_bool(flag: &str, value: &str) -> Result<bool, FlagsError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(FlagsError::InvalidBool {
            flag: flag.to_owned(),
            value: value.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_containerd_start_arguments() {
        let flags = Flags::parse([
            "-namespace",
            "default",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "c1",
            "-debug",
            "start",
        ])
        .unwrap();
        assert_eq!(flags.namespace, "default");
        assert_eq!(flags.address, "/run/containerd/containerd.sock");
        assert_eq!(flags.publish_binary, "/usr/bin/containerd");
        assert_eq!(flags.id, "c1");
        assert!(flags.debug);
        assert_eq!(flags.action.as_deref(), Some("start"));
    }

    #[test]
    fn parses_inline_values_and_double_dashes() {
        let flags = Flags::parse(["--id=c2", "-bundle=/b", "-debug=false", "delete"]).unwrap();
        assert_eq!(flags.id, "c2");
        assert_eq!(flags.bundle, Some(PathBuf::from("/b")));
        assert!(!flags.debug);
        assert_eq!(flags.action.as_deref(), Some("delete"));
    }

    #[test]
    fn rejects_bad_arguments() {
        assert_eq!(
            Flags::parse(["-nope"]),
            Err(FlagsError::Unknown("nope".into()))
        );
        assert_eq!(
            Flags::parse(["-id"]),
            Err(FlagsError::MissingValue("id".into()))
        );
        assert_eq!(
            Flags::parse(["start", "delete"]),
            Err(FlagsError::ExtraArgument("delete".into()))
        );
    }
}
