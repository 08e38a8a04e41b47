use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::json;

use super::dump::{dump_request, parse_page_server, CheckpointOptions, DumpTarget};
use super::restore::{cgroup_roots, restore_request, stdio_inherit_fds, RestoreOptions};
use super::rpc::{CgMode, Opts, Req, ReqType, Resp, Version};
use super::*;
use crate::cgroups::Manager;

fn spec(value: serde_json::Value) -> oci_spec::runtime::Spec {
    serde_json::from_value(value).unwrap()
}

fn target() -> DumpTarget {
    DumpTarget {
        pid: 42,
        rootfs: PathBuf::from("/bundle/rootfs"),
        freeze_cgroup: Some(PathBuf::from("/sys/fs/cgroup/freezer/c1")),
        external: vec!["mnt[/data]:/data".into()],
    }
}

fn opts(request: &Req) -> &Opts {
    request.opts.as_ref().expect("request has options")
}

#[test]
fn dump_request_defaults() {
    let options = CheckpointOptions {
        image_path: "/img".into(),
        ..Default::default()
    };
    let request = dump_request(&options, &target(), 5, None).unwrap();
    assert_eq!(request.r#type, ReqType::Dump as i32);
    let opts = opts(&request);
    assert_eq!(opts.images_dir_fd, 5);
    assert_eq!(opts.work_dir_fd, None);
    assert_eq!(opts.pid, Some(42));
    assert_eq!(opts.log_file.as_deref(), Some("dump.log"));
    assert_eq!(opts.log_level, Some(4));
    assert_eq!(opts.root.as_deref(), Some("/bundle/rootfs"));
    assert_eq!(
        opts.freeze_cgroup.as_deref(),
        Some("/sys/fs/cgroup/freezer/c1")
    );
    assert_eq!(opts.external, vec!["mnt[/data]:/data".to_string()]);
    assert_eq!(opts.leave_running, Some(false));
    assert_eq!(opts.notify_scripts, Some(true));
    assert_eq!(opts.orphan_pts_master, Some(true));
    assert_eq!(opts.manage_cgroups, Some(true));
    assert_eq!(opts.manage_cgroups_mode, None);
    assert_eq!(opts.track_mem, None);
    assert_eq!(opts.ps, None);
    assert_eq!(opts.lazy_pages, None);
}

#[test]
fn dump_request_sets_flags() {
    let options = CheckpointOptions {
        image_path: "/img".into(),
        work_path: Some("/work".into()),
        parent_path: Some("../pre".into()),
        leave_running: true,
        tcp_established: true,
        ext_unix_sk: true,
        shell_job: true,
        file_locks: true,
        auto_dedup: true,
        lazy_pages: true,
        page_server: Some("127.0.0.1:27".into()),
        manage_cgroups_mode: Some(ManageCgroupsMode::Strict),
        empty_ns: libc::CLONE_NEWNET as u32,
        ..Default::default()
    };
    let request = dump_request(&options, &target(), 5, Some(6)).unwrap();
    let opts = opts(&request);
    assert_eq!(opts.work_dir_fd, Some(6));
    assert_eq!(opts.parent_img.as_deref(), Some("../pre"));
    assert_eq!(opts.track_mem, Some(true));
    assert_eq!(opts.leave_running, Some(true));
    assert_eq!(opts.tcp_established, Some(true));
    assert_eq!(opts.ext_unix_sk, Some(true));
    assert_eq!(opts.shell_job, Some(true));
    assert_eq!(opts.file_locks, Some(true));
    assert_eq!(opts.auto_dedup, Some(true));
    assert_eq!(opts.lazy_pages, Some(true));
    assert_eq!(opts.empty_ns, Some(libc::CLONE_NEWNET as u32));
    assert_eq!(opts.manage_cgroups_mode, Some(CgMode::Strict as i32));
    let ps = opts.ps.as_ref().unwrap();
    assert_eq!(ps.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(ps.port, Some(27));
}

#[test]
fn pre_dump_request_tracks_memory() {
    let options = CheckpointOptions {
        pre_dump: true,
        ..Default::default()
    };
    let request = dump_request(&options, &target(), 5, None).unwrap();
    assert_eq!(request.r#type, ReqType::PreDump as i32);
    assert_eq!(opts(&request).track_mem, Some(true));
}

#[test]
fn pre_dump_rejects_lazy_pages() {
    let options = CheckpointOptions {
        pre_dump: true,
        lazy_pages: true,
        ..Default::default()
    };
    let error = dump_request(&options, &target(), 5, None).unwrap_err();
    assert!(error.to_string().contains("exclude each other"), "{error}");
}

#[test]
fn page_server_parsing() {
    let ps = parse_page_server("[::1]:8080").unwrap();
    assert_eq!(ps.address.as_deref(), Some("[::1]"));
    assert_eq!(ps.port, Some(8080));
    for bad in ["nocolon", ":80", "host:", "host:99999", "host:x"] {
        let error = parse_page_server(bad).unwrap_err().to_string();
        assert!(error.contains("--page-server"), "{bad}: {error}");
        assert!(error.contains(bad), "{bad}: {error}");
    }
}

#[test]
fn empty_ns_names() {
    let flags = empty_ns_flags(&["network".into(), "ipc".into()]).unwrap();
    assert_eq!(flags, (libc::CLONE_NEWNET | libc::CLONE_NEWIPC) as u32);
    assert_eq!(empty_ns_flags(&[]).unwrap(), 0);
    let error = empty_ns_flags(&["net".into()]).unwrap_err().to_string();
    assert!(error.contains("\"net\""), "{error}");
}

#[test]
fn cgroup_mode_values() {
    assert_eq!(ManageCgroupsMode::Soft.rpc(), CgMode::Soft);
    assert_eq!(ManageCgroupsMode::Full.rpc(), CgMode::Full);
    assert_eq!(ManageCgroupsMode::Strict.rpc(), CgMode::Strict);
    assert_eq!(ManageCgroupsMode::Ignore.rpc(), CgMode::Ignore);
}

#[test]
fn restore_request_fields() {
    let options = RestoreOptions {
        shell_job: true,
        lsm_profile: Some("apparmor:unconfined".into()),
        manage_cgroups_mode: Some(ManageCgroupsMode::Full),
        ..Default::default()
    };
    let inherit = stdio_inherit_fds(&["/dev/null".into(), "pipe:[77]".into(), "pipe:[78]".into()]);
    let request = restore_request(
        &options,
        Path::new("/tmp/root"),
        7,
        Some(8),
        vec!["mnt[/data]:/src".into()],
        inherit,
    );
    assert_eq!(request.r#type, ReqType::Restore as i32);
    let opts = opts(&request);
    assert_eq!(opts.images_dir_fd, 7);
    assert_eq!(opts.work_dir_fd, Some(8));
    assert_eq!(opts.root.as_deref(), Some("/tmp/root"));
    assert_eq!(opts.log_file.as_deref(), Some("restore.log"));
    assert_eq!(opts.rst_sibling, Some(true));
    assert_eq!(opts.evasive_devices, Some(true));
    assert_eq!(opts.shell_job, Some(true));
    assert_eq!(opts.lsm_profile.as_deref(), Some("apparmor:unconfined"));
    assert_eq!(opts.manage_cgroups_mode, Some(CgMode::Full as i32));
    assert_eq!(opts.external, vec!["mnt[/data]:/src".to_string()]);
    let keys: Vec<(&str, i32)> = opts
        .inherit_fd
        .iter()
        .map(|f| (f.key.as_str(), f.fd))
        .collect();
    assert_eq!(keys, vec![("pipe:[77]", 1), ("pipe:[78]", 2)]);
}

#[test]
fn cgroup_roots_from_proc() {
    let text = "12:freezer:/c1\n4:cpu,cpuacct:/c1\n1:name=systemd:/c1\n0::/c1\n";
    let roots = cgroup_roots(text);
    let pairs: Vec<(&str, &str)> = roots
        .iter()
        .map(|r| (r.ctrl.as_deref().unwrap(), r.path.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("freezer", "/c1"),
            ("cpu,cpuacct", "/c1"),
            ("name=systemd", "/c1")
        ]
    );
}

#[test]
fn request_round_trips() {
    let request = dump_request(&CheckpointOptions::default(), &target(), 3, None).unwrap();
    let decoded = Req::decode(request.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded, request);
}

#[test]
fn response_decodes_criu_bytes() {
    // criu_resp{type: VERSION, success: true, version{3, 17, sublevel 1}}
    // as protobuf encodes it.
    let bytes = [
        0x08, 0x0a, 0x10, 0x01, 0x52, 0x06, 0x08, 0x03, 0x10, 0x11, 0x20, 0x01,
    ];
    let response = Resp::decode(&bytes[..]).unwrap();
    assert_eq!(response.r#type, ReqType::Version as i32);
    assert!(response.success);
    let version = response.version.unwrap();
    assert_eq!(version.number(), 31701);
}

#[test]
fn version_number() {
    let version = Version {
        major_number: 3,
        minor_number: 17,
        sublevel: None,
        ..Default::default()
    };
    assert_eq!(version.number(), 31700);
}

#[test]
fn last_error_line_skips_later_lines() {
    let log = "(00.1) Version: 3.17.1\n\
               (00.2) Error (criu/vdso.c:381): vdso: first\n\
               (00.3) Error (criu/kerndat.c:1615): kerndat failed.\n\
               (00.4) files stat: fs/nr_open 1048576\n";
    assert_eq!(
        last_error_line(log).as_deref(),
        Some("Error (criu/kerndat.c:1615): kerndat failed.")
    );
    assert_eq!(last_error_line("(00.1) all fine\n"), None);
}

#[test]
fn failed_response_names_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dump.log");
    std::fs::write(&log, "(00.5) Error (criu/cr-dump.c:1): cannot dump\n").unwrap();
    let response = Resp {
        r#type: ReqType::Dump as i32,
        success: false,
        ..Default::default()
    };
    let message = check_response(ReqType::Dump, &response, &log)
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("criu dump failed: "), "{message}");
    assert!(
        message.contains("Error (criu/cr-dump.c:1): cannot dump"),
        "{message}"
    );
    assert!(message.contains(&log.display().to_string()), "{message}");

    let missing = dir.path().join("restore.log");
    let response = Resp {
        cr_errmsg: Some("no images".into()),
        ..response
    };
    let message = check_response(ReqType::Restore, &response, &missing)
        .unwrap_err()
        .to_string();
    assert!(message.contains("no images"), "{message}");
    assert!(message.contains("restore.log"), "{message}");
}

#[test]
fn locate_missing_binary_names_flag() {
    let message = Criu::locate(Some(Path::new("/nonexistent/criu")))
        .unwrap_err()
        .to_string();
    assert!(message.contains("/nonexistent/criu"), "{message}");
    assert!(message.contains("--criu"), "{message}");
}

#[test]
fn locate_searches_path() {
    let criu = Criu::locate(Some(Path::new("sh"))).unwrap();
    assert!(criu.binary.is_absolute(), "{}", criu.binary.display());
}

fn manager() -> Manager {
    Manager::new(Some("/hull-test/c1"), "c1").unwrap()
}

#[test]
fn external_bind_and_masked_mounts() {
    let spec = spec(json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data/../data2", "type": "bind", "source": "/srv/data"},
            {"destination": "/etc/hosts", "source": "/etc/hosts", "options": ["rbind", "ro"]}
        ],
        "linux": {"maskedPaths": ["/proc/kcore", "/proc/acpi"]}
    }));
    let is_file = |path: &Path| path == Path::new("/proc/kcore");
    let dump = external::dump_mounts(&spec, &manager(), &is_file);
    assert_eq!(
        dump,
        vec![
            "mnt[/data2]:/data2".to_string(),
            "mnt[/etc/hosts]:/etc/hosts".to_string(),
            "mnt[/proc/kcore]:/dev/null".to_string(),
        ]
    );
    let restore = external::restore_mounts(&spec, &manager());
    assert_eq!(
        restore,
        vec![
            "mnt[/data2]:/srv/data".to_string(),
            "mnt[/etc/hosts]:/etc/hosts".to_string(),
            "mnt[/dev/null]:/dev/null".to_string(),
        ]
    );
}

#[test]
fn external_joined_namespaces() {
    let netns = tempfile::NamedTempFile::new().unwrap();
    let spec = spec(json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [
            {"type": "pid"},
            {"type": "network", "path": netns.path()},
            {"type": "uts", "path": "/proc/self/ns/uts"}
        ]}
    }));
    let inode = std::fs::metadata(netns.path()).unwrap();
    let dump = external::dump_namespaces(&spec).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(dump, vec![format!("net[{}]:extRootNetNS", inode.ino())]);

    let restore = external::restore_namespaces(&spec).unwrap();
    let keys: Vec<&str> = restore.inherited.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["extRootNetNS"]);
    assert_eq!(restore.join.len(), 1);
    assert_eq!(restore.join[0].ns, "uts");
    assert_eq!(restore.join[0].ns_file, "/proc/self/ns/uts");
}

#[test]
fn joined_cgroup_namespace_is_rejected() {
    let spec = spec(json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "cgroup", "path": "/proc/self/ns/cgroup"}]}
    }));
    let error = external::restore_namespaces(&spec).unwrap_err().to_string();
    assert!(error.contains("/proc/self/ns/cgroup"), "{error}");
}
