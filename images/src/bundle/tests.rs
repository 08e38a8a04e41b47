//! Tests of the whole spec that [`generate`] builds.

use std::fs;

use oci_spec::image::{ConfigBuilder, ImageConfiguration, ImageConfigurationBuilder};
use oci_spec::runtime::{Capability, LinuxNamespaceType, PosixRlimitType, Spec};
use serde_json::Value;

use super::*;

fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("etc")).unwrap();
    fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nweb:x:33:33:web:/var/www:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("etc/group"),
        "root:x:0:\nweb:x:33:\nlog:x:4:web\n",
    )
    .unwrap();
    dir
}

fn image(configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> ImageConfiguration {
    let config = configure(ConfigBuilder::default()).build().unwrap();
    ImageConfigurationBuilder::default()
        .config(config)
        .build()
        .unwrap()
}

fn sample_image() -> ImageConfiguration {
    image(|c| {
        c.entrypoint(vec!["/bin/server".to_owned()])
            .cmd(vec!["--port".to_owned(), "80".to_owned()])
            .env(vec![
                "PATH=/opt/bin:/bin".to_owned(),
                "MODE=prod".to_owned(),
            ])
            .working_dir("/srv")
            .user("web")
            .exposed_ports(vec!["8443/tcp".to_owned(), "80/tcp".to_owned()])
            .volumes(vec!["/data".to_owned(), "/cache".to_owned()])
            .stop_signal("SIGQUIT")
            .labels(HashMap::from([("maintainer".to_owned(), "x".to_owned())]))
    })
}

fn to_json(spec: &Spec) -> Value {
    serde_json::to_value(spec).unwrap()
}

#[test]
fn generate_applies_image_config() {
    let dir = rootfs();
    let spec = generate(&sample_image(), dir.path(), &BundleOptions::default()).unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(
        process.args().as_ref().unwrap(),
        &vec!["/bin/server", "--port", "80"]
    );
    assert_eq!(process.cwd(), Path::new("/srv"));
    assert_eq!(process.user().uid(), 33);
    assert_eq!(process.user().gid(), 33);
    assert_eq!(process.user().additional_gids().as_ref().unwrap(), &vec![4]);
    assert_eq!(
        process.env().as_ref().unwrap(),
        &vec![
            "PATH=/opt/bin:/bin",
            "MODE=prod",
            "HOSTNAME=hull",
            "HOME=/var/www"
        ]
    );
    assert_eq!(process.terminal(), Some(false));
    assert_eq!(process.no_new_privileges(), Some(true));
    assert_eq!(spec.hostname().as_deref(), Some("hull"));
    assert_eq!(spec.version(), "1.0.2");
}

#[test]
fn generate_applies_overrides() {
    let dir = rootfs();
    let opts = BundleOptions {
        entrypoint_override: Some(vec!["/bin/sh".to_owned()]),
        args_override: vec!["-c".to_owned(), "id".to_owned()],
        env_extra: vec!["MODE=dev".to_owned(), "HOME=/tmp".to_owned()],
        user_override: Some("0:4".to_owned()),
        workdir_override: Some("/".to_owned()),
        hostname: Some("box".to_owned()),
        terminal: true,
        no_new_privileges: false,
        ..Default::default()
    };
    let spec = generate(&sample_image(), dir.path(), &opts).unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(
        process.args().as_ref().unwrap(),
        &vec!["/bin/sh", "-c", "id"]
    );
    assert_eq!(process.cwd(), Path::new("/"));
    assert_eq!((process.user().uid(), process.user().gid()), (0, 4));
    let env = process.env().as_ref().unwrap();
    assert!(env.contains(&"MODE=dev".to_owned()));
    assert!(env.contains(&"HOME=/tmp".to_owned()));
    assert!(env.contains(&"HOSTNAME=box".to_owned()));
    assert!(env.contains(&"TERM=xterm".to_owned()));
    assert_eq!(process.terminal(), Some(true));
    assert_eq!(process.no_new_privileges(), Some(false));
    assert_eq!(spec.hostname().as_deref(), Some("box"));
}

#[test]
fn generate_home_defaults_to_root_dir() {
    let dir = rootfs();
    let opts = BundleOptions {
        user_override: Some("4000".to_owned()),
        ..Default::default()
    };
    let spec = generate(&sample_image(), dir.path(), &opts).unwrap();
    let env = spec.process().as_ref().unwrap().env().clone().unwrap();
    assert!(env.contains(&"HOME=/".to_owned()), "{env:?}");
}

#[test]
fn generate_errors_name_values() {
    let dir = rootfs();
    let no_command = generate(&image(|c| c), dir.path(), &BundleOptions::default());
    assert!(matches!(no_command, Err(BundleError::NoCommand)));

    let relative = image(|c| c.cmd(vec!["sh".to_owned()]).working_dir("srv"));
    let err = generate(&relative, dir.path(), &BundleOptions::default()).unwrap_err();
    assert!(err.to_string().contains("\"srv\""), "{err}");

    let unknown_user = image(|c| c.cmd(vec!["sh".to_owned()]).user("nobody-here"));
    let err = generate(&unknown_user, dir.path(), &BundleOptions::default()).unwrap_err();
    assert!(err.to_string().contains("nobody-here"), "{err}");

    let opts = BundleOptions {
        cap_add: vec!["CAP_MAGIC".to_owned()],
        ..Default::default()
    };
    let err = generate(&sample_image(), dir.path(), &opts).unwrap_err();
    assert!(err.to_string().contains("CAP_MAGIC"), "{err}");
}

#[test]
fn annotations_keep_ports_volumes_and_signal() {
    let dir = rootfs();
    let opts = BundleOptions {
        annotations: HashMap::from([("io.example/owner".to_owned(), "team".to_owned())]),
        ..Default::default()
    };
    let spec = generate(&sample_image(), dir.path(), &opts).unwrap();
    let annotations = spec.annotations().as_ref().unwrap();
    assert_eq!(annotations[STOP_SIGNAL_ANNOTATION], "SIGQUIT");
    assert_eq!(annotations[EXPOSED_PORTS_ANNOTATION], "80/tcp,8443/tcp");
    assert_eq!(annotations[VOLUMES_ANNOTATION], "/cache,/data");
    assert_eq!(annotations["io.example/owner"], "team");
    assert!(!annotations.contains_key("maintainer"));
    assert_eq!(annotations.len(), 4);
}

#[test]
fn security_defaults() {
    let dir = rootfs();
    let spec = generate(&sample_image(), dir.path(), &BundleOptions::default()).unwrap();
    let process = spec.process().as_ref().unwrap();
    let caps = process.capabilities().as_ref().unwrap();
    let bounding = caps.bounding().as_ref().unwrap();
    assert_eq!(bounding.len(), DEFAULT_CAPABILITIES.len());
    assert!(!bounding.contains(&Capability::SysAdmin));
    assert!(caps.inheritable().as_ref().unwrap().is_empty());

    let rlimits = process.rlimits().as_ref().unwrap();
    assert_eq!(rlimits.len(), 1);
    assert_eq!(rlimits[0].typ(), PosixRlimitType::RlimitNofile);
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    let expected = hard.min(1_048_576);
    assert_eq!(rlimits[0].soft(), expected);
    assert_eq!(rlimits[0].hard(), expected);

    let linux = spec.linux().as_ref().unwrap();
    let masked = linux.masked_paths().as_ref().unwrap();
    for path in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/sys/firmware",
    ] {
        assert!(masked.contains(&path.to_owned()), "{path} not masked");
    }
    let readonly = linux.readonly_paths().as_ref().unwrap();
    for path in [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        assert!(readonly.contains(&path.to_owned()), "{path} not read-only");
    }
    let kinds: Vec<LinuxNamespaceType> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|ns| ns.typ())
        .collect();
    assert_eq!(kinds.len(), 6);
    assert!(kinds.contains(&LinuxNamespaceType::Network));
    assert!(kinds.contains(&LinuxNamespaceType::Cgroup));
    assert!(!kinds.contains(&LinuxNamespaceType::User));
    assert_eq!(linux.seccomp().as_ref(), Some(&default_seccomp()));
}

#[test]
fn seccomp_follows_added_capabilities() {
    let dir = rootfs();
    let opts = BundleOptions {
        cap_add: vec!["SYS_ADMIN".to_owned()],
        ..Default::default()
    };
    let spec = generate(&sample_image(), dir.path(), &opts).unwrap();
    let json = to_json(&spec);
    let rules = json["linux"]["seccomp"]["syscalls"].as_array().unwrap();
    assert!(!rules
        .iter()
        .any(|r| r["names"].as_array().unwrap().contains(&"mount".into())));
}

#[test]
fn default_mounts() {
    let dir = rootfs();
    let spec = generate(&sample_image(), dir.path(), &BundleOptions::default()).unwrap();
    let json = to_json(&spec);
    let mounts = json["mounts"].as_array().unwrap();
    let find = |destination: &str| {
        mounts
            .iter()
            .find(|m| m["destination"] == destination)
            .unwrap_or_else(|| panic!("no mount at {destination}"))
    };
    assert_eq!(find("/proc")["type"], "proc");
    assert_eq!(find("/dev")["type"], "tmpfs");
    assert_eq!(find("/dev/pts")["type"], "devpts");
    assert_eq!(find("/dev/shm")["type"], "tmpfs");
    assert_eq!(find("/dev/mqueue")["type"], "mqueue");
    let sys = find("/sys");
    assert!(sys["options"].as_array().unwrap().contains(&"ro".into()));
    let cgroup = find("/sys/fs/cgroup");
    assert_eq!(cgroup["type"], "cgroup");
    assert!(cgroup["options"].as_array().unwrap().contains(&"ro".into()));
    assert_eq!(mounts.len(), 7);
}

#[test]
fn options_mounts_network_and_limits() {
    let dir = rootfs();
    let opts = BundleOptions {
        mounts: vec![
            BindMount {
                source: dir.path().join("etc"),
                destination: "/config".to_owned(),
                readonly: true,
            },
            BindMount {
                source: dir.path().to_path_buf(),
                destination: "/work".to_owned(),
                readonly: false,
            },
        ],
        network_namespace: Some(NetworkMode::Path("/run/netns/test".into())),
        memory_limit: Some(64 << 20),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        pids_limit: Some(100),
        readonly_rootfs: true,
        root_path: Some("rootfs".into()),
        ..Default::default()
    };
    let json = to_json(&generate(&sample_image(), dir.path(), &opts).unwrap());

    let mounts = json["mounts"].as_array().unwrap();
    assert_eq!(mounts[7]["destination"], "/config");
    assert_eq!(mounts[7]["type"], "bind");
    assert!(mounts[7]["options"]
        .as_array()
        .unwrap()
        .contains(&"ro".into()));
    assert!(mounts[8]["options"]
        .as_array()
        .unwrap()
        .contains(&"rw".into()));
    let net = json["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ns| ns["type"] == "network")
        .unwrap()
        .clone();
    assert_eq!(net["path"], "/run/netns/test");

    let resources = &json["linux"]["resources"];
    assert_eq!(resources["memory"]["limit"], 64 << 20);
    assert_eq!(resources["cpu"]["quota"], 50_000);
    assert_eq!(resources["cpu"]["period"], 100_000);
    assert_eq!(resources["pids"]["limit"], 100);
    assert_eq!(resources["devices"][0]["allow"], false);
    assert_eq!(json["root"]["path"], "rootfs");
    assert_eq!(json["root"]["readonly"], true);
}

#[test]
fn host_network_has_no_namespace() {
    let dir = rootfs();
    let opts = BundleOptions {
        network_namespace: Some(NetworkMode::Host),
        ..Default::default()
    };
    let spec = generate(&sample_image(), dir.path(), &opts).unwrap();
    let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    assert!(!namespaces
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::Network));
    assert_eq!(namespaces.len(), 5);
}

#[test]
fn root_path_defaults_to_argument() {
    let dir = rootfs();
    let spec = generate(&sample_image(), dir.path(), &BundleOptions::default()).unwrap();
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), dir.path());
    assert_eq!(root.readonly(), Some(false));
}

#[test]
fn write_bundle_replaces_config() {
    let dir = rootfs();
    let bundle = tempfile::tempdir().unwrap();
    let target = bundle.path().join("nested");
    let spec = generate(&sample_image(), dir.path(), &BundleOptions::default()).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("config.json"), "old").unwrap();
    write_bundle(&target, &spec).unwrap();

    let text = fs::read_to_string(target.join("config.json")).unwrap();
    let read: Spec = serde_json::from_str(&text).unwrap();
    assert_eq!(read, spec);
    let leftovers: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "config.json")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn write_bundle_reports_path() {
    let spec = generate(&sample_image(), rootfs().path(), &BundleOptions::default()).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = write_bundle(&file.path().join("bundle"), &spec).unwrap_err();
    assert!(
        err.to_string().contains(&file.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn linux_section_has_only_expected_keys() {
    let dir = rootfs();
    let json = to_json(&generate(&sample_image(), dir.path(), &BundleOptions::default()).unwrap());
    let mut keys: Vec<&String> = json["linux"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "maskedPaths",
            "namespaces",
            "readonlyPaths",
            "resources",
            "seccomp"
        ]
    );
}

#[test]
fn nofile_default_capped_by_hard_limit() {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    let limit = default_nofile_limit();
    assert!(limit <= NOFILE_LIMIT);
    assert!(limit > 0);
    if let Some(hard) = hard {
        assert!(limit <= hard, "limit {limit} above hard limit {hard}");
    }
    assert_eq!(BundleOptions::default().nofile_limit, limit);
}
