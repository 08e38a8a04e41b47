//! An OCI image made with umoci from a copy of the busybox fixture with an
//! extra user, its unpacked rootfs, and runs of bundles generated for it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use hull_images::bundle::{self, BundleOptions};
use hull_integration::output::Output;
use hull_integration::registry::{layout_from_rootfs, umoci};
use hull_integration::{fixtures, host, unique_id, Runtime};
use nix::sys::resource::{getrlimit, Resource};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use oci_spec::runtime::Spec;
use tempfile::TempDir;

/// The user the image config names, added to the image's passwd file.
pub const USER_LINE: &str = "app:x:2000:2000:app user:/home/app:/bin/sh";
/// Groups added to the image: the user's primary group and one that lists
/// the user as a member.
pub const GROUP_LINES: &str = "app:x:2000:\ndevs:x:3000:app\n";

/// The image's `Cmd`: a script for the `sh -c` entrypoint, then `$0` and
/// `$1`. It prints one `key=value` line per fact the tests check.
pub const IMAGE_SCRIPT: &str = "echo uid=$(id -u) gid=$(id -g) groups=$(id -G); \
    echo pwd=$(pwd); echo nofile=$(ulimit -n); env | sort | sed 's/^/env:/'; echo args=\"$0|$1\"";

/// An image with Entrypoint, Cmd, Env, WorkingDir and a named User, its
/// unpacked rootfs, and the hull and runc helpers that run its bundles.
pub struct Fixture {
    /// Removed on drop after the containers are deleted.
    work: TempDir,
    rootfs: PathBuf,
    config: ImageConfiguration,
    pub hull: Runtime,
    pub runc: Runtime,
    /// Containers started through [`Fixture::run`], deleted on drop.
    started: std::cell::RefCell<Vec<(bool, String)>>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let work = tempfile::Builder::new()
            .prefix("hull-bundle-image-")
            .tempdir()
            .expect("create a work directory");
        let source = work.path().join("source");
        copy_tree(fixtures::busybox_rootfs(), &source);
        append(&source.join("etc/passwd"), &format!("{USER_LINE}\n"));
        append(&source.join("etc/group"), GROUP_LINES);
        fs::create_dir_all(source.join("home/app")).unwrap();
        fs::create_dir_all(source.join("srv/work")).unwrap();
        std::os::unix::fs::chown(source.join("home/app"), Some(2000), Some(2000)).unwrap();

        let layout = work.path().join("layout");
        let configure = [
            "--config.entrypoint=/bin/sh",
            "--config.entrypoint=-c",
            &format!("--config.cmd={IMAGE_SCRIPT}"),
            "--config.cmd=zero",
            "--config.cmd=one two",
            "--config.env=PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "--config.env=IMAGE_VAR=from-image",
            "--config.workingdir=/srv/work",
            "--config.user=app",
            "--config.exposedports=8080/tcp",
            "--config.volume=/data",
            "--config.stopsignal=SIGQUIT",
        ];
        layout_from_rootfs(&source, &layout, "test", &configure);

        let unpacked = work.path().join("unpacked");
        let image = format!("{}:test", layout.display());
        umoci(&["unpack", "--image", &image, &unpacked.display().to_string()]);
        let config = read_image_config(&layout);

        Fixture {
            rootfs: unpacked.join("rootfs"),
            work,
            config,
            hull: Runtime::hull(),
            runc: Runtime::runc(),
            started: Default::default(),
        }
    }

    /// Generates the spec for the image with `opts`.
    pub fn generate(&self, opts: &BundleOptions) -> Spec {
        bundle::generate(&self.config, &self.rootfs, opts)
            .unwrap_or_else(|e| panic!("generate failed: {e}"))
    }

    /// Writes `spec` into a new bundle directory with `write_bundle` and
    /// runs it in the foreground with hull, or with runc when `runc` is set.
    pub fn run(&self, spec: &Spec, runc: bool) -> Output {
        let id = unique_id("bundle");
        let dir = self.work.path().join(&id);
        bundle::write_bundle(&dir, spec).unwrap_or_else(|e| panic!("write_bundle failed: {e}"));
        self.started.borrow_mut().push((runc, id.clone()));
        let runtime = if runc { &self.runc } else { &self.hull };
        let dir = dir.display().to_string();
        runtime.exec(&["run", "--bundle", &dir, &id])
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for (runc, id) in self.started.borrow().iter() {
            let runtime = if *runc { &self.runc } else { &self.hull };
            let _ = runtime.delete_force(id);
            host::remove_cgroups(id);
        }
    }
}

/// Runs a container of `rootfs` (not the image) with `config`, for fixtures
/// such as Debian that are too large to pack.
pub fn run_rootfs(config: &ImageConfiguration, rootfs: &Path, opts: &BundleOptions) -> Output {
    let hull = Runtime::hull();
    let spec = bundle::generate(config, rootfs, opts).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::Builder::new()
        .prefix("hull-bundle-")
        .tempdir()
        .unwrap();
    bundle::write_bundle(dir.path(), &spec).unwrap();
    let id = unique_id("bundle-rootfs");
    let path = dir.path().display().to_string();
    let output = hull.exec(&["run", "--bundle", &path, &id]);
    let _ = hull.delete_force(&id);
    host::remove_cgroups(&id);
    output
}

/// Returns the default options with `nofile_limit` lowered to this
/// process's hard limit. hull rejects and runc 1.1.5 fails on a container
/// limit above the caller's, and test hosts may lack CAP_SYS_RESOURCE to
/// raise theirs to [`bundle::NOFILE_LIMIT`].
pub fn options() -> BundleOptions {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit(RLIMIT_NOFILE)");
    BundleOptions {
        nofile_limit: hard.min(bundle::NOFILE_LIMIT),
        ..Default::default()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(status.success(), "cp -a {} failed", from.display());
}

/// Appends `text`, replacing the file so that hard links stay untouched.
fn append(path: &Path, text: &str) {
    let mut content = fs::read_to_string(path).unwrap();
    content.push_str(text);
    fs::remove_file(path).unwrap();
    fs::write(path, content).unwrap();
}

/// Reads the config of the only image in the OCI layout at `layout`.
fn read_image_config(layout: &Path) -> ImageConfiguration {
    let blob = |digest: &oci_spec::image::Digest| {
        layout
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    };
    let index = ImageIndex::from_file(layout.join("index.json")).unwrap();
    let manifest = ImageManifest::from_file(blob(index.manifests()[0].digest())).unwrap();
    ImageConfiguration::from_file(blob(manifest.config().digest())).unwrap()
}
