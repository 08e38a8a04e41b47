//! The facts of `hull features`: only what this build implements.

use serde_json::{json, Value};

/// Returns the `features` document of the runtime spec for this build.
pub fn features() -> Value {
    let capabilities: Vec<String> = {
        let mut names: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        names.sort();
        names
    };
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::rootfs::options::known_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": capabilities,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": crate::seccomp::ACTIONS,
                "operators": crate::seccomp::OPERATORS,
                "archs": crate::seccomp::ARCHITECTURES,
                "knownFlags": crate::seccomp::FLAGS,
                "supportedFlags": crate::seccomp::FLAGS
            },
            "apparmor": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
            "selinux": {"enabled": false}
        },
        "annotations": {
            "io.github.hull.version": env!("CARGO_PKG_VERSION")
        }
    })
}
