use std::path::Path;

use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};
use serde_json::json;

use super::*;

fn mapping(container_id: u32, host_id: u32, size: u32) -> LinuxIdMapping {
    serde_json::from_value(json!({ "containerID": container_id, "hostID": host_id, "size": size }))
        .unwrap()
}

fn spec_with_mounts(mounts: serde_json::Value) -> Spec {
    let mut spec = Spec::default();
    let mounts: Vec<Mount> = serde_json::from_value(mounts).unwrap();
    spec.set_mounts(Some(mounts));
    spec
}

fn reason(error: RootfsError) -> String {
    match error {
        RootfsError::InvalidMount { path, reason } => {
            assert_eq!(path, Path::new("/data"), "error names the destination");
            reason
        }
        other => panic!("expected an invalid mount, got {other}"),
    }
}

fn plan_one(
    mount: serde_json::Value,
    user_namespace: ContainerUserNamespace<'_>,
) -> Result<Vec<IdMapRequest>, RootfsError> {
    plan(&spec_with_mounts(json!([mount])), user_namespace)
}

#[test]
fn plain_mounts_need_no_mapping() {
    let spec = spec_with_mounts(json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind"] },
    ]));
    let requests = plan(&spec, ContainerUserNamespace::None).unwrap();
    assert!(requests.is_empty());
}

#[test]
fn explicit_mappings_are_used() {
    let mount = json!({
        "destination": "/data", "type": "bind", "source": "/srv",
        "options": ["rbind", "ridmap"],
        "uidMappings": [{ "containerID": 1000, "hostID": 2000, "size": 1 }],
        "gidMappings": [{ "containerID": 1000, "hostID": 3000, "size": 1 }],
    });
    let requests = plan_one(mount, ContainerUserNamespace::None).unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.index, 0);
    assert_eq!(request.destination, Path::new("/data"));
    assert_eq!(request.source, Path::new("/srv"));
    assert!(request.rbind);
    assert!(request.recursive);
    assert_eq!(
        request.mapping,
        MappingSource::Mappings {
            uid: vec![mapping(1000, 2000, 1)],
            gid: vec![mapping(1000, 3000, 1)],
        }
    );
}

#[test]
fn mappings_without_option_apply_to_top() {
    let mount = json!({
        "destination": "/data", "source": "/srv", "options": ["rbind"],
        "uidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
        "gidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
    });
    let requests = plan_one(mount, ContainerUserNamespace::None).unwrap();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].rbind);
    assert!(!requests[0].recursive);
}

#[test]
fn idmap_takes_new_namespace_mappings() {
    let uid = [mapping(0, 100000, 65536)];
    let gid = [mapping(0, 200000, 65536)];
    let namespace = ContainerUserNamespace::New {
        uid_mappings: &uid,
        gid_mappings: &gid,
    };
    for mount in [
        json!({ "destination": "/data", "type": "bind", "source": "/srv", "options": ["bind", "idmap"] }),
        json!({ "destination": "/data", "type": "bind", "source": "/srv", "options": ["bind", "idmap"],
                "uidMappings": [], "gidMappings": [] }),
    ] {
        let requests = plan_one(mount, namespace).unwrap();
        assert_eq!(requests.len(), 1);
        assert!(!requests[0].recursive);
        assert_eq!(
            requests[0].mapping,
            MappingSource::Mappings {
                uid: uid.to_vec(),
                gid: gid.to_vec(),
            }
        );
    }
}

#[test]
fn idmap_takes_joined_namespace() {
    let mount = json!({ "destination": "/data", "source": "/srv", "options": ["bind", "ridmap"] });
    let requests = plan_one(
        mount,
        ContainerUserNamespace::Joined(Path::new("/proc/1/ns/user")),
    )
    .unwrap();
    assert_eq!(
        requests[0].mapping,
        MappingSource::Namespace("/proc/1/ns/user".into())
    );
    assert!(requests[0].recursive);
}

#[test]
fn idmap_without_any_mappings_is_rejected() {
    let mount = json!({ "destination": "/data", "source": "/srv", "options": ["bind", "idmap"] });
    let error = plan_one(mount, ContainerUserNamespace::None).unwrap_err();
    assert!(reason(error).contains("user namespace"));
}

#[test]
fn mapping_on_non_bind_is_rejected() {
    let mount = json!({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "uidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
        "gidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
    });
    let error = plan_one(mount, ContainerUserNamespace::None).unwrap_err();
    assert!(reason(error).contains("bind mounts only"));

    let mount =
        json!({ "destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"] });
    let error = plan_one(mount, ContainerUserNamespace::None).unwrap_err();
    assert!(reason(error).contains("bind mounts only"));
}

#[test]
fn one_sided_mappings_are_rejected() {
    let uid_only = json!({
        "destination": "/data", "source": "/srv", "options": ["bind"],
        "uidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
    });
    let error = plan_one(uid_only, ContainerUserNamespace::None).unwrap_err();
    assert!(reason(error).contains("together"));

    let gid_only = json!({
        "destination": "/data", "source": "/srv", "options": ["bind", "idmap"],
        "uidMappings": [],
        "gidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
    });
    let uid = [mapping(0, 1, 1)];
    let namespace = ContainerUserNamespace::New {
        uid_mappings: &uid,
        gid_mappings: &uid,
    };
    let error = plan_one(gid_only, namespace).unwrap_err();
    assert!(reason(error).contains("together"));
}

#[test]
fn bind_without_source_is_rejected() {
    let mount = json!({
        "destination": "/data", "options": ["bind", "idmap"],
        "uidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
        "gidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
    });
    let error = plan_one(mount, ContainerUserNamespace::None).unwrap_err();
    assert!(reason(error).contains("source"));
}

#[test]
fn mapping_ranges_are_checked() {
    assert!(check_mappings("uidMappings", &[mapping(0, 1000, 1), mapping(1, 5000, 10)]).is_ok());
    assert!(check_mappings("uidMappings", &[mapping(0, 0, u32::MAX)]).is_ok());

    let cases = [
        (vec![mapping(0, 1000, 0)], "size 0"),
        (vec![mapping(1, 0, u32::MAX)], "past id"),
        (vec![mapping(0, u32::MAX, 1)], "past id"),
        (vec![mapping(0, 1000, 10), mapping(5, 2000, 10)], "overlaps"),
        (
            vec![mapping(0, 1000, 10), mapping(100, 1009, 1)],
            "overlaps",
        ),
        (vec![mapping(0, 1000, 1); 341], "at most 340"),
        (
            (0..300)
                .map(|i| mapping(i * 10_000_000, i * 10_000_000, 1))
                .collect(),
            "bytes",
        ),
    ];
    for (mappings, expected) in cases {
        let error = check_mappings("uidMappings", &mappings).unwrap_err();
        assert!(error.contains(expected), "{error}");
        assert!(error.starts_with("uidMappings"), "{error}");
    }
}

#[test]
fn invalid_ranges_name_the_destination() {
    let mount = json!({
        "destination": "/data", "source": "/srv", "options": ["bind", "idmap"],
        "uidMappings": [{ "containerID": 0, "hostID": 1, "size": 0 }],
        "gidMappings": [{ "containerID": 0, "hostID": 1, "size": 1 }],
    });
    let error = plan_one(mount, ContainerUserNamespace::None).unwrap_err();
    assert!(reason(error).contains("uidMappings entry"));
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn request(source: &Path, uid: LinuxIdMapping, gid: LinuxIdMapping) -> IdMapRequest {
    IdMapRequest {
        index: 3,
        destination: "/data".into(),
        source: source.to_path_buf(),
        rbind: false,
        recursive: false,
        mapping: MappingSource::Mappings {
            uid: vec![uid],
            gid: vec![gid],
        },
    }
}

// Detached trees from OPEN_TREE_CLONE never touch the host's mount table,
// so these tests need no mount namespace of their own.
#[test]
fn open_maps_file_owners() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owned");
    std::fs::write(&file, "x").unwrap();
    std::os::unix::fs::chown(&file, Some(1000), Some(1001)).unwrap();

    let requests = [request(
        dir.path(),
        mapping(1000, 2000, 1),
        mapping(1001, 3000, 1),
    )];
    let mounts = IdMappedMounts::open(&requests).unwrap();
    assert_eq!(mounts.len(), 1);
    assert!(mounts.tree(0).is_none());
    let tree = mounts.tree(3).expect("tree of mount 3");
    let stat = rustix::fs::statat(tree, "owned", rustix::fs::AtFlags::empty()).unwrap();
    assert_eq!(stat.st_uid, 2000);
    assert_eq!(stat.st_gid, 3000);
}

#[test]
fn open_maps_several_mounts() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = request(dir.path(), mapping(0, 5000, 10), mapping(0, 5000, 10));
    let second = IdMapRequest {
        index: 4,
        ..first.clone()
    };
    let mounts = IdMappedMounts::open(&[first, second]).unwrap();
    assert_eq!(mounts.len(), 2);
    let root_of = |index| {
        rustix::fs::fstat(mounts.tree(index).unwrap())
            .unwrap()
            .st_uid
    };
    let owner = std::fs::metadata(dir.path()).unwrap();
    let expected = if std::os::unix::fs::MetadataExt::uid(&owner) == 0 {
        5000
    } else {
        65534
    };
    assert_eq!(root_of(3), expected);
    assert_eq!(root_of(4), expected);
}

#[test]
fn open_rejects_procfs_source() {
    if !is_root() {
        return;
    }
    let requests = [request(
        Path::new("/proc"),
        mapping(0, 1000, 1),
        mapping(0, 1000, 1),
    )];
    let error = IdMappedMounts::open(&requests).unwrap_err().to_string();
    assert!(error.starts_with("mount destination \"/data\""), "{error}");
    assert!(error.contains("id mapping of source /proc"), "{error}");
}

#[test]
fn open_reports_missing_source() {
    if !is_root() {
        return;
    }
    let requests = [request(
        Path::new("/nonexistent/hull-idmap"),
        mapping(0, 1000, 1),
        mapping(0, 1000, 1),
    )];
    let error = IdMappedMounts::open(&requests).unwrap_err().to_string();
    assert!(error.starts_with("mount destination \"/data\""), "{error}");
    assert!(
        error.contains("open_tree of source /nonexistent/hull-idmap"),
        "{error}"
    );
}

#[test]
fn user_namespace_plans_plain_binds() {
    let spec = spec_with_mounts(json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"] },
        { "destination": "/etc/hosts", "type": "none", "source": "/etc/hosts", "options": ["bind", "ro"] },
    ]));
    let namespace = ContainerUserNamespace::Joined(Path::new("/proc/1/ns/user"));
    let requests = plan(&spec, namespace).unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].index, 1);
    assert_eq!(requests[0].source, Path::new("/srv"));
    assert!(requests[0].rbind);
    assert_eq!(requests[0].mapping, MappingSource::Unmapped);
    assert_eq!(requests[1].index, 2);
    assert!(!requests[1].rbind);
    assert_eq!(requests[1].mapping, MappingSource::Unmapped);
}

#[test]
fn open_clones_unmapped_source() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let request = IdMapRequest {
        index: 3,
        destination: "/data".into(),
        source: dir.path().to_path_buf(),
        rbind: false,
        recursive: false,
        mapping: MappingSource::Unmapped,
    };
    let mounts = IdMappedMounts::open(&[request]).unwrap();
    assert_eq!(mounts.len(), 1);
    assert!(mounts.tree(3).is_some());
}
