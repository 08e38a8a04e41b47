//! Runs CNI plugins as the CNI spec describes: one exec per plugin, the
//! command and ids in `CNI_*` variables, the configuration on stdin and the
//! result or error as JSON on stdout.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use super::conflist::plugin_config;

/// Time after which a plugin is killed, so that a hung plugin cannot keep
/// the network lock forever. The plugins finish well within a second here,
/// but iptables may wait for the xtables lock of a busy host.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Directories searched for plugin binaries when `CNI_PATH` is unset:
/// Debian's containernetworking-plugins, then the upstream default.
const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

/// The ids of one attachment of a network to a network namespace.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub interface: &'a str,
}

/// Finds and runs CNI plugins.
#[derive(Debug, Clone)]
pub struct Plugins {
    dirs: Vec<PathBuf>,
    timeout: Duration,
}

impl Plugins {
    /// Searches `$CNI_PATH` (colon-separated) or the default directories.
    pub fn from_env() -> Plugins {
        let dirs = match std::env::var_os("CNI_PATH") {
            Some(path) if !path.is_empty() => std::env::split_paths(&path).collect(),
            _ => DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
        };
        Plugins {
            dirs,
            timeout: PLUGIN_TIMEOUT,
        }
    }

    fn find(&self, plugin: &str) -> anyhow::Result<PathBuf> {
        if plugin.is_empty() || plugin.contains('/') {
            bail!("invalid CNI plugin type {plugin:?}");
        }
        self.dirs
            .iter()
            .map(|dir| dir.join(plugin))
            .find(|path| path.is_file())
            .with_context(|| {
                format!(
                    "CNI plugin {plugin} not found in {}: install containernetworking-plugins or set CNI_PATH",
                    self.search_path().to_string_lossy()
                )
            })
    }

    fn search_path(&self) -> OsString {
        std::env::join_paths(&self.dirs).unwrap_or_default()
    }

    /// Runs one plugin and returns its result (JSON `null` when it printed
    /// nothing, which the spec allows for DEL).
    pub fn exec(&self, command: &str, target: &Target, config: &Value) -> anyhow::Result<Value> {
        let plugin = config["type"].as_str().unwrap_or_default();
        let binary = self.find(plugin)?;
        let mut child = Command::new(&binary)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", target.container_id)
            .env("CNI_NETNS", target.netns)
            .env("CNI_IFNAME", target.interface)
            .env("CNI_PATH", self.search_path())
            .env_remove("CNI_ARGS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to run CNI plugin {}", binary.display()))?;
        let input = serde_json::to_vec(config)?;
        let pid = Pid::from_raw(child.id() as i32);
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            // A plugin that fails early may close stdin before reading it
            // all: its exit status and stdout then explain the failure.
            let _ = stdin.write_all(&input);
            drop(stdin);
            let _ = sender.send(child.wait_with_output());
        });
        let output = match receiver.recv_timeout(self.timeout) {
            Ok(output) => {
                output.with_context(|| format!("failed to wait for CNI plugin {plugin}"))?
            }
            Err(_) => {
                // The thread has not reaped the child yet, so the pid is
                // still the plugin's.
                let _ = kill(pid, Signal::SIGKILL);
                bail!(
                    "CNI plugin {plugin} {command} timed out after {:?} and was killed",
                    self.timeout
                );
            }
        };
        if !output.status.success() {
            bail!(
                "CNI plugin {plugin} {command} failed ({}): {}",
                output.status,
                plugin_error(&output.stdout, &output.stderr)
            );
        }
        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "CNI plugin {plugin} {command} printed invalid JSON: {}",
                String::from_utf8_lossy(&output.stdout).trim()
            )
        })
    }

    /// Runs ADD of every plugin of `list` in order, each given the previous
    /// one's result, and returns the last result. `on_result` receives every
    /// plugin's result as soon as it exists, so that a caller can record
    /// what DEL will need even if a later plugin fails.
    pub fn add(
        &self,
        list: &Value,
        target: &Target,
        runtime_config: &serde_json::Map<String, Value>,
        mut on_result: impl FnMut(&Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<Value> {
        let mut previous: Option<Value> = None;
        for plugin in plugins(list)? {
            let config = plugin_config(list, plugin, previous.as_ref(), runtime_config);
            let result = self.exec("ADD", target, &config)?;
            if result.is_null() {
                bail!(
                    "CNI plugin {} ADD printed no result",
                    plugin["type"].as_str().unwrap_or_default()
                );
            }
            on_result(&result)?;
            previous = Some(result);
        }
        previous.context("the CNI configuration list has no plugins")
    }

    /// Runs DEL of every plugin of `list` in reverse order, each given the
    /// result of ADD when it is known. Every plugin runs even when an
    /// earlier one fails, and the first failure is returned.
    pub fn del(
        &self,
        list: &Value,
        target: &Target,
        runtime_config: &serde_json::Map<String, Value>,
        result: Option<&Value>,
    ) -> anyhow::Result<()> {
        let mut first_error = None;
        for plugin in plugins(list)?.iter().rev() {
            let config = plugin_config(list, plugin, result, runtime_config);
            if let Err(err) = self.exec("DEL", target, &config) {
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

fn plugins(list: &Value) -> anyhow::Result<&Vec<Value>> {
    list["plugins"]
        .as_array()
        .context("invalid CNI configuration list: \"plugins\" is not an array")
}

/// Formats a plugin's error: the spec's `{"code", "msg", "details"}` object
/// on stdout when present, else whatever it wrote.
fn plugin_error(stdout: &[u8], stderr: &[u8]) -> String {
    if let Ok(error) = serde_json::from_slice::<Value>(stdout) {
        if let Some(message) = error["msg"].as_str() {
            let code = &error["code"];
            return match error["details"].as_str() {
                Some(details) if !details.is_empty() => {
                    format!("{message}: {details} (code {code})")
                }
                _ => format!("{message} (code {code})"),
            };
        }
    }
    let text = String::from_utf8_lossy(if stdout.is_empty() { stderr } else { stdout });
    let text = text.trim();
    if text.is_empty() {
        String::from("no output")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_error_reads_spec_errors() {
        let stdout =
            br#"{"code": 7, "msg": "failed to set bridge addr", "details": "file exists"}"#;
        assert_eq!(
            plugin_error(stdout, b""),
            "failed to set bridge addr: file exists (code 7)"
        );
        assert_eq!(plugin_error(b"", b"panic: boom\n"), "panic: boom");
        assert_eq!(plugin_error(b"", b""), "no output");
    }

    /// Writes an executable shell script named `name` into `dir`.
    fn fake_plugin(dir: &Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn plugins_in(dir: &Path, timeout: Duration) -> Plugins {
        Plugins {
            dirs: vec![dir.to_path_buf()],
            timeout,
        }
    }

    fn target() -> Target<'static> {
        Target {
            container_id: "c1",
            netns: Path::new("/run/netns/c1"),
            interface: "eth0",
        }
    }

    #[test]
    fn exec_passes_environment_and_config() {
        let dir = tempfile::tempdir().unwrap();
        fake_plugin(
            dir.path(),
            "echo-env",
            r#"config=$(cat)
printf '{"command":"%s","id":"%s","netns":"%s","ifname":"%s","path":"%s","config":%s}' \
  "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_PATH" "$config""#,
        );
        let plugins = plugins_in(dir.path(), PLUGIN_TIMEOUT);
        let config = serde_json::json!({ "type": "echo-env", "name": "web" });
        let result = plugins.exec("ADD", &target(), &config).unwrap();
        assert_eq!(result["command"], "ADD");
        assert_eq!(result["id"], "c1");
        assert_eq!(result["netns"], "/run/netns/c1");
        assert_eq!(result["ifname"], "eth0");
        assert_eq!(result["path"], dir.path().to_str().unwrap());
        assert_eq!(result["config"], config);
    }

    #[test]
    fn exec_reports_plugin_errors() {
        let dir = tempfile::tempdir().unwrap();
        fake_plugin(
            dir.path(),
            "failing",
            r#"echo '{"code": 11, "msg": "address in use"}'; exit 1"#,
        );
        let plugins = plugins_in(dir.path(), PLUGIN_TIMEOUT);
        let config = serde_json::json!({ "type": "failing" });
        let err = plugins.exec("ADD", &target(), &config).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("CNI plugin failing ADD failed"),
            "{message}"
        );
        assert!(message.ends_with("address in use (code 11)"), "{message}");
    }

    #[test]
    fn exec_kills_a_hung_plugin() {
        let dir = tempfile::tempdir().unwrap();
        fake_plugin(dir.path(), "hung", "exec sleep 30");
        let plugins = plugins_in(dir.path(), Duration::from_millis(300));
        let started = std::time::Instant::now();
        let config = serde_json::json!({ "type": "hung" });
        let err = plugins.exec("DEL", &target(), &config).unwrap_err();
        assert!(
            err.to_string().contains("CNI plugin hung DEL timed out"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_plugin_is_named() {
        let plugins = plugins_in(Path::new("/nonexistent"), PLUGIN_TIMEOUT);
        let err = plugins.find("bridge").unwrap_err();
        assert!(
            err.to_string()
                .contains("CNI plugin bridge not found in /nonexistent"),
            "{err}"
        );
    }
}
