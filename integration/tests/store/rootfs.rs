//! A container rootfs prepared from a pulled image and mounted with the
//! overlay options the store returns.

use std::process::Command;

use hull_integration::{require_root, require_tools};

use crate::fixture::{run, Env};

/// Unmounts its target on drop, so a failed assert leaves no mount.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootfs_overlay_mounts_image() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let env = Env::start();
    let reference = env.push_busybox("rootfs/busybox", &[]);
    let record = env.pull(&reference).await.unwrap();

    let mounts = env.store.prepare_rootfs("rootfs-test", &record).unwrap();
    assert_eq!(mounts.lower, env.store.image_layers(&record).unwrap());
    let mount = &mounts.mounts[0];
    assert_eq!(mount.kind, "overlay");
    let target = env.dir.path().join("merged");
    std::fs::create_dir(&target).unwrap();
    run(
        "mount",
        &[
            "-t",
            &mount.kind,
            &mount.source,
            "-o",
            &mount.options.join(","),
            target.to_str().unwrap(),
        ],
    );
    let mounted = Mounted(target.clone());
    assert!(target.join("bin/busybox").is_file());
    std::fs::write(target.join("written"), b"upper").unwrap();
    assert!(mounts.upper.join("written").is_file());
    drop(mounted);

    assert!(env.store.release_rootfs("rootfs-test").unwrap());
    assert!(!mounts.dir.exists());
    assert!(env.store.list_leases().unwrap().is_empty());
}
