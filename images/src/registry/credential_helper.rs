//! Docker credential helpers: `docker-credential-<name> get|store|erase`,
//! with the server URL or a JSON object on stdin and JSON on stdout.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::credentials::{config_key, Credentials};
use super::error::RegistryError;

fn helper_program(helper: &str) -> String {
    format!("docker-credential-{helper}")
}

pub(crate) fn helper_installed(helper: &str) -> bool {
    let program = helper_program(helper);
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(&program).is_file()))
        .unwrap_or(false)
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(
    helper: &str,
    registry: &str,
    action: &str,
    input: &[u8],
) -> Result<std::process::Output, RegistryError> {
    let helper_error = |reason: String| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let mut child = Command::new(helper_program(helper))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| helper_error(format!("starting it failed: {e}")))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(input)
        .map_err(|e| helper_error(format!("writing its input failed: {e}")))?;
    drop(stdin);
    child
        .wait_with_output()
        .map_err(|e| helper_error(format!("waiting for it failed: {e}")))
}

/// Returns the server URL passed to credential helpers.
fn helper_server(registry: &str) -> String {
    config_key(registry)
}

pub(crate) fn helper_get(
    helper: &str,
    registry: &str,
) -> Result<Option<Credentials>, RegistryError> {
    if !helper_installed(helper) {
        tracing::debug!(helper, registry, "credential helper not installed, skipped");
        return Ok(None);
    }
    let output = run_helper(helper, registry, "get", helper_server(registry).as_bytes())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // The helper protocol reports a missing entry on stdout with a
        // non-zero exit status.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(RegistryError::CredentialHelper {
            helper: helper.to_string(),
            registry: registry.to_string(),
            reason: format!(
                "exit status {}: {}{}",
                output.status,
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let parsed: Value =
        serde_json::from_str(&stdout).map_err(|e| RegistryError::CredentialHelper {
            helper: helper.to_string(),
            registry: registry.to_string(),
            reason: format!("invalid JSON output: {e}"),
        })?;
    let username = parsed
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let secret = parsed
        .get("Secret")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if secret.is_empty() {
        return Ok(None);
    }
    // NOTE: a user name of `<token>` marks an identity token, which docker
    // trades for an access token by OAuth2. This client sends it as a
    // password in basic auth, which only some registries accept.
    Ok(Some(Credentials {
        username: username.to_string(),
        password: secret.to_string(),
    }))
}

pub(crate) fn helper_store(
    helper: &str,
    registry: &str,
    credentials: &Credentials,
) -> Result<(), RegistryError> {
    let input = serde_json::json!({
        "ServerURL": helper_server(registry),
        "Username": credentials.username,
        "Secret": credentials.password,
    });
    let output = run_helper(helper, registry, "store", input.to_string().as_bytes())?;
    if output.status.success() {
        return Ok(());
    }
    Err(RegistryError::CredentialHelper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason: format!(
            "store exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim()
        ),
    })
}

pub(crate) fn helper_erase(helper: &str, registry: &str) -> Result<bool, RegistryError> {
    let output = run_helper(
        helper,
        registry,
        "erase",
        helper_server(registry).as_bytes(),
    )?;
    Ok(output.status.success())
}
