//! An OCI image made with umoci from a copy of the busybox fixture with an
//! extra user, its unpacked rootfs, and runs of bundles generated for it.

use std::path::{Path, PathBuf};

use hull_images::bundle::{self, BundleOptions};
use hull_integration::image::app_image_layout;
use hull_integration::output::Output;
use hull_integration::registry::umoci;
use hull_integration::{host, unique_id, Runtime};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use oci_spec::runtime::Spec;
use tempfile::TempDir;

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
        let layout = app_image_layout(work.path(), "test");

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

/// Returns the default options. Their `nofile_limit` is capped at this
/// process's hard limit, which hull and runc 1.1.5 need.
pub fn options() -> BundleOptions {
    BundleOptions::default()
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
