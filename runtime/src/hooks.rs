//! Lifecycle hooks of the runtime spec: each hook is a program run with the
//! container's state as JSON on its stdin, optionally with a timeout.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use serde::Serialize;

use crate::{Error, Result};

/// The hook points of the runtime spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    /// Every hook point, in the order of the lifecycle.
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    /// Returns the hooks of this kind in `spec`, in order.
    pub fn of(self, spec: &Spec) -> &[Hook] {
        let Some(hooks) = spec.hooks() else {
            return &[];
        };
        let list = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }

    /// Returns true for the kinds whose failure only logs a warning: the
    /// runtime spec lets the lifecycle go on after `poststart` and
    /// `poststop` hooks fail.
    pub fn failure_is_warning(self) -> bool {
        matches!(self, Kind::Poststart | Kind::Poststop)
    }
}

/// The state a hook reads on its stdin.
#[derive(Debug, Clone, Serialize)]
pub struct HookState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: &'a std::path::Path,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Runs every hook of `kind` in order. A failing hook stops the rest and
/// returns its error, or, for the kinds whose failure is a warning, logs it
/// and goes on.
pub fn run(kind: Kind, spec: &Spec, state: &HookState) -> Result<()> {
    let input = serde_json::to_vec(state).expect("hook state always encodes");
    // `createContainer` hooks run in the container's mount namespace before
    // the switch to its root, from the rootfs directory, as in runc 1.1,
    // so that relative paths in them name files of the container. The
    // other kinds run from the runtime's working directory.
    let cwd = match (kind, spec.root()) {
        (Kind::CreateContainer, Some(root)) => Some(state.bundle.join(root.path())),
        _ => None,
    };
    for (index, hook) in kind.of(spec).iter().enumerate() {
        if let Err(error) = run_one(hook, &input, cwd.as_deref()) {
            // "error running hook" is runc's wording, which callers match.
            let error = Error::Message(format!(
                "error running hook #{index}: {} hook {error}",
                kind.name()
            ));
            if kind.failure_is_warning() {
                tracing::warn!("{error}");
                continue;
            }
            return Err(error);
        }
    }
    Ok(())
}

/// Runs one hook and waits for it, killing it when its timeout passes.
fn run_one(hook: &Hook, input: &[u8], cwd: Option<&Path>) -> std::result::Result<(), String> {
    let path = hook.path();
    let mut command = Command::new(path);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            command.arg0(argv0).args(rest);
        }
    }
    command.env_clear();
    for entry in hook.env().as_deref().unwrap_or_default() {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        command.env(name, value);
    }
    // Output goes to an in-memory file, which cannot fill up and block the
    // hook as an unread pipe would. The error quotes it.
    let output = rustix::fs::memfd_create("hull-hook-output", rustix::fs::MemfdFlags::CLOEXEC)
        .map(std::fs::File::from)
        .map_err(|e| format!("memfd for the output of {}: {e}", path.display()))?;
    let output_copy = output
        .try_clone()
        .map_err(|e| format!("memfd for the output of {}: {e}", path.display()))?;
    let output_file = output.try_clone().ok();
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::from(output_copy))
        .stderr(Stdio::from(output));
    let mut child = command
        .spawn()
        .map_err(|e| format!("run {}: {e}", path.display()))?;

    // A hook that exits without reading its stdin is not an error.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }

    let timeout = hook
        .timeout()
        .filter(|seconds| *seconds > 0)
        .map(|seconds| Duration::from_secs(seconds as u64));
    let status = match wait_with_timeout(&mut child, timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} timed out after {}s",
                path.display(),
                timeout.unwrap_or_default().as_secs()
            ));
        }
        Err(e) => return Err(format!("wait for {}: {e}", path.display())),
    };
    if status.success() {
        return Ok(());
    }
    drop(command);
    let mut text = String::new();
    if let Some(mut file) = output_file {
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.take(4096).read_to_string(&mut text);
    }
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal} ({})", signal_text(signal)),
        _ => "failed".into(),
    };
    let text = text.trim();
    if text.is_empty() {
        Err(format!("{}: {how}", path.display()))
    } else {
        Err(format!("{}: {how}: {text}", path.display()))
    }
}

/// Returns the description of a signal in lower case, such as "bad system
/// call".
fn signal_text(signal: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local
    // string, read at once, and the runtime is single-threaded.
    let text = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(signal)) };
    text.to_string_lossy().to_lowercase()
}

/// Waits for `child` and returns `Ok(None)` when `timeout` passed first.
fn wait_with_timeout(
    child: &mut std::process::Child,
    timeout: Option<Duration>,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let Some(timeout) = timeout else {
        return child.wait().map(Some);
    };
    let pid = rustix::process::Pid::from_raw(child.id() as i32)
        .ok_or_else(|| std::io::Error::other("hook has no pid"))?;
    let owned_pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let timespec = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let pidfd = owned_pidfd.as_fd();
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&timespec)) {
            Ok(0) => continue,
            Ok(_) => return child.wait().map(Some),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(kind: &str, hooks: serde_json::Value) -> Spec {
        let text = serde_json::json!({
            "ociVersion": "1.0.2",
            "hooks": { kind: hooks }
        });
        serde_json::from_value(text).unwrap()
    }

    fn state(bundle: &std::path::Path) -> HookState<'_> {
        HookState {
            oci_version: "1.0.2",
            id: "hooked",
            status: "creating",
            pid: Some(42),
            bundle,
            annotations: Default::default(),
        }
    }

    #[test]
    fn hook_reads_state_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("state");
        let spec = spec_with(
            "createRuntime",
            serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", out.display())]}]),
        );
        run(Kind::CreateRuntime, &spec, &state(dir.path())).unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(written["id"], "hooked");
        assert_eq!(written["pid"], 42);
        assert_eq!(written["status"], "creating");
    }

    #[test]
    fn failing_hook_error_quotes_output() {
        let spec = spec_with(
            "prestart",
            serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 7"]}]),
        );
        let message = run(Kind::Prestart, &spec, &state(std::path::Path::new("/")))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("error running hook #0: prestart hook /bin/sh: exit status 7"),
            "{message}"
        );
        assert!(message.contains("broken"), "{message}");
    }

    #[test]
    fn hook_past_timeout_is_killed() {
        let spec = spec_with(
            "createContainer",
            serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", "sleep 30"], "timeout": 1}]),
        );
        let started = Instant::now();
        let message = run(
            Kind::CreateContainer,
            &spec,
            &state(std::path::Path::new("/")),
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("timed out after 1s"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn poststop_failure_is_a_warning() {
        let spec = spec_with("poststop", serde_json::json!([{"path": "/bin/false"}]));
        assert!(run(Kind::Poststop, &spec, &state(std::path::Path::new("/"))).is_ok());
    }

    #[test]
    fn hook_gets_only_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let spec = spec_with(
            "poststart",
            serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("env > {}", out.display())],
                "env": ["HOOK_VAR=1"]}]),
        );
        run(Kind::Poststart, &spec, &state(dir.path())).unwrap();
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.contains("HOOK_VAR=1"), "{env}");
        assert!(!env.contains("CARGO"), "{env}");
    }
}
