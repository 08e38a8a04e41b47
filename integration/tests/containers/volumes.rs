//! Named volumes, bind mounts and tmpfs mounts inside containers.

use hull_integration::containers::Host;
use hull_integration::{require_root, require_tools};

#[test]
fn named_volume_survives_rm() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let image = host.busybox.clone();
    let write = host.hullctl(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "keep:/data",
        &image,
        "sh",
        "-c",
        "echo saved > /data/file",
    ]);
    assert_eq!(write.code, Some(0), "{write}");
    let volumes = host.hullctl_ok(&["volume", "ls", "-q"]);
    assert_eq!(volumes.stdout, "keep\n", "{volumes}");

    let read = host.hullctl_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        "type=volume,source=keep,target=/again",
        &image,
        "cat",
        "/again/file",
    ]);
    assert_eq!(read.stdout, "saved\n", "{read}");

    host.hullctl_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "holder",
        "-v",
        "keep:/data",
        &image,
        "sleep",
        "60",
    ]);
    let busy = host.hullctl(&["volume", "rm", "keep"]);
    assert_ne!(busy.code, Some(0), "removed a volume in use: {busy}");
    assert!(busy.stderr.contains("holder"), "{busy}");
    host.hullctl_ok(&["rm", "-f", "holder"]);
    host.hullctl_ok(&["volume", "rm", "keep"]);
}

#[test]
fn volume_filled_from_image() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let image = host.busybox.clone();
    // /etc of the image is copied into the new, empty volume.
    let listed = host.hullctl_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "etc:/etc",
        &image,
        "cat",
        "/etc/passwd",
    ]);
    assert!(listed.stdout.contains("root:"), "{listed}");
    let inspect = host.hullctl_ok(&["volume", "inspect", "etc"]);
    let value: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let mountpoint = value[0]["Mountpoint"].as_str().unwrap().to_owned();
    assert!(
        std::path::Path::new(&mountpoint).join("passwd").is_file(),
        "{inspect}"
    );
}

#[test]
fn bind_mount_read_only() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let shared = host.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("in"), "from host\n").unwrap();
    let spec = format!("{}:/mnt:ro", shared.display());
    let output = host.hullctl(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &spec,
        &host.busybox,
        "sh",
        "-c",
        "cat /mnt/in; echo x > /mnt/new",
    ]);
    assert_ne!(output.code, Some(0), "wrote to a read-only bind: {output}");
    assert!(output.stdout.contains("from host"), "{output}");
    assert!(output.stderr.contains("Read-only file system"), "{output}");
    assert!(!shared.join("new").exists());

    let spec = format!("{}:/mnt", shared.display());
    host.hullctl_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &spec,
        &host.busybox,
        "sh",
        "-c",
        "echo x > /mnt/new",
    ]);
    assert_eq!(std::fs::read_to_string(shared.join("new")).unwrap(), "x\n");

    let tmpfs = host.hullctl_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--tmpfs",
        "/scratch",
        &host.busybox,
        "sh",
        "-c",
        "grep /scratch /proc/mounts",
    ]);
    assert!(tmpfs.stdout.contains("tmpfs /scratch tmpfs"), "{tmpfs}");
}
