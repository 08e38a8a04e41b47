//! hullctl's behaviour at its edges: a closed stdout, files that are not
//! archives, missing output directories, credentials given after the
//! daemon started, and the wording of gc's report.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use hull_integration::registry::Registry;
use hull_integration::{require_root, require_tools};

use crate::fixture::{busybox_registry, push_busybox, Imaged, BUSYBOX_REPOSITORY};

#[test]
fn closed_stdout_ends_quietly() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let (_registry, reference) = busybox_registry(imaged.dir.path());
    imaged.hullctl_ok(&["pull", &reference]);

    // A pipe whose read end is closed before hullctl writes: every write
    // fails with EPIPE, as when the output goes to `head`.
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let output = imaged
        .hullctl_command(&["inspect", &reference])
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{output:?}");
}

#[test]
fn load_and_save_name_bad_paths() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let junk = imaged.dir.path().join("junk.tar");
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&junk, bytes).unwrap();
    let load = imaged.hullctl(&["load", "-i", &junk.display().to_string()]);
    assert_eq!(load.code, Some(1), "{load}");
    assert!(load.stderr.contains("not a tar archive"), "{load}");
    assert!(load.stderr.contains("junk.tar"), "{load}");
    assert!(
        load.stderr.chars().all(|c| !c.is_control() || c == '\n'),
        "{load}"
    );

    let (_registry, reference) = busybox_registry(imaged.dir.path());
    imaged.hullctl_ok(&["pull", &reference]);
    let missing = imaged.dir.path().join("no-such-dir/out.tar");
    let save = imaged.hullctl(&["save", "-o", &missing.display().to_string(), &reference]);
    assert_eq!(save.code, Some(1), "{save}");
    assert!(save.stderr.contains("does not exist"), "{save}");
    assert!(
        save.stderr.contains(&missing.display().to_string()),
        "{save}"
    );
    assert!(!missing.parent().unwrap().exists());

    let rmi = imaged.hullctl_ok(&["rmi", &reference]);
    assert!(rmi.stdout.contains("Untagged:"), "{rmi}");
    let gc = imaged.hullctl_ok(&["gc"]);
    assert!(gc.stdout.contains(", 1 snapshot, freed"), "{gc}");
}

#[test]
fn login_reaches_a_running_daemon() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci", "htpasswd");
    // The daemon starts with its own, empty, auth file.
    let imaged = Imaged::start();
    let registry = Registry::start_with_user("hull", "secret");
    push_busybox(
        &registry,
        imaged.dir.path(),
        "1",
        &["--dest-creds", "hull:secret"],
    );
    let reference = format!("{}/{BUSYBOX_REPOSITORY}:1", registry.host());
    let other_auth = imaged.dir.path().join("other/config.json");

    let mut login = imaged.hullctl_command(&["login", "-u", "hull", "-p", "secret"]);
    let status = login
        .arg(registry.host())
        .env("HULL_AUTH_FILE", &other_auth)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let pull = imaged
        .hullctl_command(&["pull", "-q", &reference])
        .env("HULL_AUTH_FILE", &other_auth)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
}
