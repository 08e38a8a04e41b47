//! Unpacking of crafted layers built with the `tar` crate.

mod smoke {
    use crate::unpack::{unpack_layer, Compression};

    #[test]
    fn unpack_busybox_tar_smoke() {
        let tar = std::process::Command::new("tar")
            .args(["-C", "/var/cache/hull-fixtures/busybox", "-cf", "-", "."])
            .output()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stats = unpack_layer(&tar.stdout[..], Compression::None, dir.path()).unwrap();
        eprintln!("{stats:?} {}", tar.stdout.len());
        let out = std::process::Command::new("diff")
            .args(["-r", "--no-dereference", "/var/cache/hull-fixtures/busybox"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
