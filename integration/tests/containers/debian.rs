//! The Debian bookworm image from the debootstrap fixture, run by name.

use hull_integration::containers::Host;
use hull_integration::fixtures::debian_rootfs;
use hull_integration::registry::layout_from_rootfs;
use hull_integration::{require_root, require_tools};

#[test]
fn debian_cat_os_release() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let layout = host.dir.path().join("debian-layout");
    layout_from_rootfs(
        debian_rootfs(),
        &layout,
        "bookworm",
        &[
            "--config.cmd=bash",
            "--config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ],
    );
    host.registry
        .push_layout(&layout, "bookworm", "library/debian:bookworm", &[]);
    let remote = format!("{}/library/debian:bookworm", host.registry.host());
    host.hullctl_ok(&["pull", "-q", &remote]);
    // Named as on Docker Hub; run finds it in the store and pulls nothing.
    host.hullctl_ok(&["tag", &remote, "debian:bookworm"]);

    let output = host.hullctl(&["run", "--rm", "debian:bookworm", "cat", "/etc/os-release"]);
    assert_eq!(output.code, Some(0), "{output}");
    assert!(
        output
            .stdout
            .contains("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\""),
        "{output}"
    );
    assert_eq!(output.stderr, "", "{output}");
    let listed = host.hullctl_ok(&["ps", "-aq"]);
    assert_eq!(listed.stdout, "", "{listed}");
}
