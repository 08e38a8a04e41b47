//! hull-imaged and hullctl end to end: a private daemon per test against
//! a docker-registry on loopback that contains the busybox fixture.

mod bundles;
mod cli;
mod crash;
mod cri;
mod fixture;
mod grpc;
mod merged;
mod rootfs;
mod run;

use hull_integration::registry::Registry;
use hull_integration::{require_root, require_tools};

use fixture::{busybox_registry, push_busybox, Imaged, BUSYBOX_REPOSITORY};

#[test]
fn hullctl_pull_list_inspect_tag_rmi() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let (registry, reference) = busybox_registry(imaged.dir.path());

    // hullctl starts the daemon itself because the socket is absent.
    let pulled = imaged.hullctl_ok(&["pull", &reference]);
    assert!(pulled.stdout.contains("Digest: sha256:"), "{pulled}");
    assert!(imaged.socket().exists(), "hullctl started no daemon");

    let table = imaged.hullctl_ok(&["images"]);
    let header = table.stdout.lines().next().unwrap_or_default();
    assert!(header.starts_with("REPOSITORY"), "{table}");
    assert!(
        header.contains("IMAGE ID") && header.contains("SIZE"),
        "{table}"
    );
    let repository = format!("{}/{BUSYBOX_REPOSITORY}", registry.host());
    assert!(table.stdout.contains(&repository), "{table}");

    let quiet = imaged.hullctl_ok(&["images", "-q"]);
    let ids: Vec<&str> = quiet.stdout.lines().collect();
    assert_eq!(ids.len(), 1, "{quiet}");
    assert_eq!(ids[0].len(), 12, "{quiet}");

    let digests = imaged.hullctl_ok(&["images", "--digests"]);
    assert!(digests.stdout.contains("DIGEST"), "{digests}");
    assert!(digests.stdout.contains("sha256:"), "{digests}");

    let json = imaged.hullctl_ok(&["images", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&json.stdout).expect("images JSON");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(list[0]["tag"], "1", "{json}");

    let inspect = imaged.hullctl_ok(&["inspect", &reference]);
    let local: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("inspect JSON");
    assert_eq!(local["config"]["config"]["Cmd"][0], "sh", "{inspect}");
    assert_eq!(
        local["layers"].as_array().map(Vec::len),
        Some(1),
        "{inspect}"
    );
    assert!(local["id"].as_str().unwrap().starts_with("sha256:"));

    let remote = imaged.hullctl_ok(&["inspect", "--remote", &reference]);
    let remote: serde_json::Value = serde_json::from_str(&remote.stdout).expect("remote JSON");
    assert_eq!(remote["digest"], local["digest"]);
    assert_eq!(remote["config"]["config"]["Cmd"][0], "sh");

    let by_id = imaged.hullctl_ok(&["inspect", ids[0]]);
    assert!(by_id.stdout.contains(&repository), "{by_id}");

    let alias = format!("{}/other/name:2", registry.host());
    imaged.hullctl_ok(&["tag", &reference, &alias]);
    let table = imaged.hullctl_ok(&["images"]);
    assert!(table.stdout.contains("other/name"), "{table}");

    // An id with two names needs -f.
    let ambiguous = imaged.hullctl(&["rmi", ids[0]]);
    assert_eq!(ambiguous.code, Some(1), "{ambiguous}");
    assert!(ambiguous.stderr.contains("several names"), "{ambiguous}");

    let removed = imaged.hullctl_ok(&["rmi", &alias]);
    assert!(removed.stdout.contains("Untagged:"), "{removed}");
    let absent = imaged.hullctl(&["rmi", &alias]);
    assert_eq!(absent.code, Some(1), "{absent}");
    assert!(absent.stderr.starts_with("hullctl: "), "{absent}");
    assert!(absent.stderr.contains("is not stored"), "{absent}");
    imaged.hullctl_ok(&["rmi", "-f", &alias]);

    imaged.hullctl_ok(&["rmi", &reference]);
    let empty = imaged.hullctl_ok(&["images", "-q"]);
    assert_eq!(empty.stdout, "", "{empty}");

    let gc = imaged.hullctl_ok(&["gc"]);
    assert!(gc.stdout.starts_with("Removed "), "{gc}");
    assert!(!gc.stdout.starts_with("Removed 0 blobs"), "{gc}");
    let check = imaged.hullctl_ok(&["check"]);
    assert!(check.stdout.contains("no problems"), "{check}");
}

#[test]
fn hullctl_push_and_copy() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let (registry, reference) = busybox_registry(imaged.dir.path());
    let other = Registry::start();

    imaged.hullctl_ok(&["pull", "-q", &reference]);
    let pushed_name = format!("{}/pushed/busybox:p1", other.host());
    let pushed = imaged.hullctl_ok(&["push", &reference, &pushed_name]);
    assert!(pushed.stdout.contains("Digest: sha256:"), "{pushed}");
    let check_pushed = imaged.hullctl_ok(&["inspect", "--remote", &pushed_name]);
    assert!(check_pushed.stdout.contains("\"sh\""), "{check_pushed}");

    // Across registries the blobs are downloaded and uploaded, within one
    // they are mounted.
    let copied_name = format!("{}/copied/busybox:c1", registry.host());
    let across = format!("{}/across/busybox:c2", other.host());
    let copied = imaged.hullctl_ok(&["copy", &pushed_name, &copied_name]);
    assert!(copied.stdout.contains("Digest: sha256:"), "{copied}");
    imaged.hullctl_ok(&["copy", "-q", &copied_name, &across]);
    let remote = imaged.hullctl_ok(&["inspect", "--remote", &across]);
    assert!(remote.stdout.contains("\"sh\""), "{remote}");

    // The copy never went through the store.
    let images = imaged.hullctl_ok(&["images", "-q"]);
    assert_eq!(images.stdout.lines().count(), 1, "{images}");
}

#[test]
fn hullctl_save_and_load() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let (_registry, reference) = busybox_registry(imaged.dir.path());
    imaged.hullctl_ok(&["pull", "-q", &reference]);

    for (format, file) in [
        ("oci-archive", "busybox-oci.tar"),
        ("docker-archive", "busybox-docker.tar"),
        ("oci-dir", "busybox-oci-dir"),
    ] {
        let path = imaged.dir.path().join(file);
        let path = path.to_string_lossy();
        imaged.hullctl_ok(&["save", "-o", &path, "--format", format, &reference]);
        imaged.hullctl_ok(&["rmi", &reference]);
        let loaded = imaged.hullctl_ok(&["load", "-i", &path]);
        assert!(loaded.stdout.contains("Loaded image"), "{format}: {loaded}");
        let images = imaged.hullctl_ok(&["images"]);
        assert!(
            images.stdout.contains(BUSYBOX_REPOSITORY),
            "{format}: {images}"
        );
    }
}

#[test]
fn hullctl_login_and_logout() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci", "htpasswd");
    let imaged = Imaged::new();
    let registry = Registry::start_with_user("hull", "secret");
    push_busybox(
        &registry,
        imaged.dir.path(),
        "1",
        &["--dest-creds", "hull:secret"],
    );
    let reference = format!("{}/{BUSYBOX_REPOSITORY}:1", registry.host());
    let host = registry.host();

    let anonymous = imaged.hullctl(&["pull", &reference]);
    assert_eq!(anonymous.code, Some(1), "{anonymous}");
    assert!(anonymous.stderr.contains("credentials"), "{anonymous}");

    let wrong = imaged.hullctl(&["login", "-u", "hull", "-p", "wrong", &host]);
    assert_eq!(wrong.code, Some(1), "{wrong}");
    assert_eq!(wrong.stderr_lines().len(), 1, "{wrong}");
    assert!(wrong.stderr.contains("rejected"), "{wrong}");
    assert!(
        !imaged.auth_file().exists(),
        "a failed login stored credentials"
    );

    let mut login = imaged.hullctl_command(&["login", "-u", "hull", "--password-stdin", &host]);
    let output = login
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"secret\n")?;
            child.wait_with_output()
        })
        .expect("run hullctl login");
    assert!(output.status.success(), "{output:?}");
    let config = std::fs::read_to_string(imaged.auth_file()).expect("auth file");
    assert!(config.contains(&host), "{config}");

    imaged.hullctl_ok(&["pull", "-q", &reference]);

    let logout = imaged.hullctl_ok(&["logout", &host]);
    assert!(logout.stdout.contains("Removing"), "{logout}");
    let config = std::fs::read_to_string(imaged.auth_file()).expect("auth file");
    assert!(!config.contains(&host), "{config}");
    let again = imaged.hullctl(&["inspect", "--remote", &reference]);
    assert_eq!(again.code, Some(1), "{again}");
}

#[test]
fn hullctl_bad_input() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let (registry, _reference) = busybox_registry(imaged.dir.path());

    let missing = format!("{}/test/absent:1", registry.host());
    let unknown_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("127.0.0.1:{port}/test/busybox:1")
    };
    let cases = [
        (missing.as_str(), "not found"),
        ("Bad//Reference!", "invalid image reference"),
        (unknown_port.as_str(), "Connection refused"),
    ];
    for (reference, expected) in cases {
        let output = imaged.hullctl(&["pull", reference]);
        assert_eq!(output.code, Some(1), "{reference}: {output}");
        let lines = output.stderr_lines();
        assert_eq!(lines.len(), 1, "{reference}: {output}");
        assert!(lines[0].starts_with("hullctl: "), "{reference}: {output}");
        assert!(lines[0].contains(expected), "{reference}: {output}");
    }

    let usage = imaged.hullctl(&["pull"]);
    assert_eq!(usage.code, Some(2), "{usage}");
}

#[test]
fn daemon_rejects_live_socket() {
    require_root!();
    let mut imaged = Imaged::start();
    let second = std::process::Command::new(hull_integration::binaries::imaged_binary())
        .arg("--root")
        .arg(imaged.dir.path().join("second-root"))
        .arg("--address")
        .arg(imaged.socket())
        .output()
        .expect("run a second hull-imaged");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another hull-imaged is serving"),
        "{stderr}"
    );
    assert!(
        imaged.socket().exists(),
        "the second daemon removed the socket"
    );

    imaged.stop();
    assert!(!imaged.socket().exists(), "SIGTERM left the socket");

    // A socket file without a listening daemon is replaced.
    drop(std::os::unix::net::UnixListener::bind(imaged.socket()).unwrap());
    imaged.spawn();
    let images = imaged.hullctl_ok(&["images", "-q"]);
    assert_eq!(images.stdout, "");
}
