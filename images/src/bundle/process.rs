//! The process's arguments, environment and working directory, merged from
//! the image config and the options the way `docker run` merges them.

use super::BundleError;

/// `PATH` set when neither the image nor the options set one; docker uses
/// the same list.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Returns `Entrypoint + Cmd` after the overrides.
///
/// `entrypoint_override` replaces the image entrypoint. A non-empty one also
/// drops the image `Cmd`, because that `Cmd` was written as arguments to the
/// replaced entrypoint. An empty override only clears the entrypoint.
/// Non-empty `args_override` replaces `Cmd` in every case.
pub fn command_line(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint_override: Option<&[String]>,
    args_override: &[String],
) -> Result<Vec<String>, BundleError> {
    let (entrypoint, default_cmd) = match entrypoint_override {
        Some(entrypoint) if !entrypoint.is_empty() => (entrypoint, &[][..]),
        Some(entrypoint) => (entrypoint, image_cmd),
        None => (image_entrypoint, image_cmd),
    };
    let cmd = if args_override.is_empty() {
        default_cmd
    } else {
        args_override
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd).cloned().collect();
    if args.is_empty() {
        return Err(BundleError::NoCommand);
    }
    Ok(args)
}

/// Environment variables in order, keyed by the part before the first `=`.
#[derive(Debug, Default)]
pub struct Environment {
    entries: Vec<(String, String)>,
}

impl Environment {
    /// Sets `key` to `value`, replacing an earlier entry in place.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.entries.push((key.to_owned(), value.to_owned())),
        }
    }

    /// Sets `key` unless it is already set.
    pub fn set_default(&mut self, key: &str, value: &str) {
        if !self.contains(key) {
            self.entries.push((key.to_owned(), value.to_owned()));
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// Parses `KEY=VALUE` and sets it; the key must be non-empty.
    pub fn set_entry(&mut self, entry: &str) -> Result<(), BundleError> {
        match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                self.set(key, value);
                Ok(())
            }
            _ => Err(BundleError::InvalidEnv {
                entry: entry.to_owned(),
            }),
        }
    }

    /// Returns the variables as `KEY=VALUE` strings.
    pub fn to_list(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

/// Merges the environment: the image's `Env`, `PATH` when missing, then
/// `HOSTNAME`, the options' entries by key, and `TERM=xterm` for a terminal
/// when still unset. `HOME` is added later, once the user is known.
pub fn environment(
    image_env: &[String],
    extra: &[String],
    hostname: &str,
    terminal: bool,
) -> Result<Environment, BundleError> {
    let mut env = Environment::default();
    for entry in image_env {
        env.set_entry(entry)?;
    }
    env.set_default("PATH", DEFAULT_PATH);
    env.set("HOSTNAME", hostname);
    for entry in extra {
        env.set_entry(entry)?;
    }
    if terminal {
        env.set_default("TERM", "xterm");
    }
    Ok(env)
}

/// Returns the working directory: the override, the image's `WorkingDir`,
/// or `/`. It must be absolute, because runtimes resolve `cwd` inside the
/// container without a base directory.
pub fn working_dir(image: Option<&str>, override_dir: Option<&str>) -> Result<String, BundleError> {
    let dir = override_dir
        .or(image)
        .filter(|dir| !dir.is_empty())
        .unwrap_or("/");
    if !dir.starts_with('/') {
        return Err(BundleError::RelativeWorkdir {
            workdir: dir.to_owned(),
        });
    }
    Ok(dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_line_override_table() {
        let entry = strings(&["/entry", "-v"]);
        let cmd = strings(&["serve", "--port=80"]);
        let new_entry = strings(&["/other"]);
        let args = strings(&["run", "fast"]);
        let none: Vec<String> = Vec::new();
        // (entrypoint override, args, expected)
        let table: [(Option<&[String]>, &[String], &[&str]); 6] = [
            (None, &none, &["/entry", "-v", "serve", "--port=80"]),
            (None, &args, &["/entry", "-v", "run", "fast"]),
            (Some(&new_entry), &none, &["/other"]),
            (Some(&new_entry), &args, &["/other", "run", "fast"]),
            (Some(&none), &none, &["serve", "--port=80"]),
            (Some(&none), &args, &["run", "fast"]),
        ];
        for (entrypoint, args, expected) in table {
            let got = command_line(&entry, &cmd, entrypoint, args).unwrap();
            assert_eq!(
                got,
                strings(expected),
                "entrypoint {entrypoint:?} args {args:?}"
            );
        }
    }

    #[test]
    fn command_line_empty_is_error() {
        let none: Vec<String> = Vec::new();
        let err = command_line(&none, &none, None, &none).unwrap_err();
        assert!(err.to_string().contains("give a command"), "{err}");
        let cmd = strings(&["sh"]);
        let cleared = command_line(&none, &cmd, Some(&strings(&["/x"])[..0]), &none);
        assert_eq!(cleared.unwrap(), cmd);
    }

    #[test]
    fn environment_merge_order() {
        let image = strings(&["PATH=/image/bin", "A=1", "B=2", "HOSTNAME=image"]);
        let extra = strings(&["B=override", "C=3", "EMPTY="]);
        let env = environment(&image, &extra, "box", true).unwrap().to_list();
        assert_eq!(
            env,
            strings(&[
                "PATH=/image/bin",
                "A=1",
                "B=override",
                "HOSTNAME=box",
                "C=3",
                "EMPTY=",
                "TERM=xterm",
            ])
        );
    }

    #[test]
    fn environment_defaults_path_and_keeps_term() {
        let extra = strings(&["TERM=vt100"]);
        let env = environment(&[], &extra, "h", true).unwrap().to_list();
        assert_eq!(env[0], format!("PATH={DEFAULT_PATH}"));
        assert!(env.contains(&"TERM=vt100".to_owned()));
        assert!(!env.contains(&"TERM=xterm".to_owned()));
        let plain = environment(&[], &[], "h", false).unwrap().to_list();
        assert!(!plain.iter().any(|e| e.starts_with("TERM=")));
    }

    #[test]
    fn environment_rejects_entries_without_key() {
        for bad in ["NOEQUALS", "=value"] {
            let err = environment(&[], &strings(&[bad]), "h", false).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn working_dir_rules() {
        assert_eq!(working_dir(None, None).unwrap(), "/");
        assert_eq!(working_dir(Some(""), None).unwrap(), "/");
        assert_eq!(working_dir(Some("/app"), None).unwrap(), "/app");
        assert_eq!(working_dir(Some("/app"), Some("/srv")).unwrap(), "/srv");
        let err = working_dir(Some("app"), None).unwrap_err();
        assert!(err.to_string().contains("\"app\""), "{err}");
    }
}
