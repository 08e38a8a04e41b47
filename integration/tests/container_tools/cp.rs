//! `cp` between the host and running or stopped containers, with docker's
//! path rules, tar streams, and symlinks in the container that point at
//! host paths.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use hull_integration::containers::Host;
use hull_integration::{require_root, require_tools};

/// Starts a detached busybox container named `name` that sleeps.
fn run_sleeper(host: &Host, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--network", "none", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&host.busybox, "sleep", "1000"]);
    host.hullctl_ok(&args);
}

/// Runs `script` with sh in container `name` and returns its stdout.
fn sh(host: &Host, name: &str, script: &str) -> String {
    host.hullctl_ok(&["exec", name, "sh", "-c", script]).stdout
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

#[test]
fn cp_file_both_ways() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    run_sleeper(&host, "box", &[]);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("note.txt");
    fs::write(&file, "hello from the host\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&file, Some(1234), Some(5678)).unwrap();

    // A file onto a missing path, into a directory, and over a file.
    host.hullctl_ok(&["cp", arg(&file), "box:/tmp/copy.txt"]);
    host.hullctl_ok(&["cp", arg(&file), "box:/tmp"]);
    host.hullctl_ok(&["cp", arg(&file), "box:etc/hostname"]);
    assert_eq!(
        sh(&host, "box", "cat /tmp/copy.txt"),
        "hello from the host\n"
    );
    assert_eq!(
        sh(&host, "box", "cat /tmp/note.txt"),
        "hello from the host\n"
    );
    assert_eq!(
        sh(&host, "box", "cat /etc/hostname"),
        "hello from the host\n"
    );
    assert_eq!(
        sh(&host, "box", "stat -c '%a %u %g' /tmp/copy.txt"),
        "640 0 0\n",
        "copies into the container belong to root"
    );

    host.hullctl_ok(&["cp", "-a", arg(&file), "box:/tmp/kept.txt"]);
    assert_eq!(
        sh(&host, "box", "stat -c '%a %u %g' /tmp/kept.txt"),
        "640 1234 5678\n",
        "-a keeps the owner"
    );

    let trailing = host.hullctl(&["cp", arg(&file), "box:/tmp/missing/"]);
    assert_ne!(trailing.code, Some(0), "{trailing}");
    assert!(trailing.stderr.contains("does not exist"), "{trailing}");

    // Back to the host: onto a missing path, into a directory, with times.
    sh(&host, "box", "echo from the container > /tmp/out.txt; chmod 604 /tmp/out.txt; chown 42:43 /tmp/out.txt; touch -d '2020-01-02 03:04:05' /tmp/out.txt");
    let out = work.path().join("out-copy.txt");
    host.hullctl_ok(&["cp", "box:/tmp/out.txt", arg(&out)]);
    assert_eq!(fs::read_to_string(&out).unwrap(), "from the container\n");
    let metadata = fs::metadata(&out).unwrap();
    assert_eq!(metadata.mode() & 0o7777, 0o604);
    assert_eq!(
        (metadata.uid(), metadata.gid()),
        (0, 0),
        "copies to the host belong to the caller"
    );
    let expected_mtime = fs::metadata(
        host.container_dir(&container_id(&host, "box"))
            .join("rootfs/tmp/out.txt"),
    )
    .unwrap()
    .mtime();
    assert_eq!(metadata.mtime(), expected_mtime);

    host.hullctl_ok(&["cp", "box:/tmp/out.txt", arg(work.path())]);
    assert_eq!(
        fs::read_to_string(work.path().join("out.txt")).unwrap(),
        "from the container\n"
    );
    host.hullctl_ok(&[
        "cp",
        "-a",
        "box:/tmp/out.txt",
        arg(&work.path().join("kept.txt")),
    ]);
    let archived = fs::metadata(work.path().join("kept.txt")).unwrap();
    assert_eq!((archived.uid(), archived.gid()), (42, 43));
}

/// Returns the id of container `name`.
fn container_id(host: &Host, name: &str) -> String {
    let output = host.hullctl_ok(&["inspect", name]);
    let value: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    value[0]["Id"].as_str().unwrap().to_owned()
}

#[test]
fn cp_directories() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    run_sleeper(&host, "box", &[]);
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    fs::write(tree.join("top.txt"), "top\n").unwrap();
    fs::write(tree.join("sub/deeper/leaf.txt"), "leaf\n").unwrap();
    fs::set_permissions(tree.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("../top.txt", tree.join("sub/link")).unwrap();

    // Into an existing directory, under the source's name.
    host.hullctl_ok(&["cp", arg(&tree), "box:/tmp"]);
    assert_eq!(
        sh(
            &host,
            "box",
            "cat /tmp/tree/top.txt /tmp/tree/sub/deeper/leaf.txt"
        ),
        "top\nleaf\n"
    );
    assert_eq!(
        sh(&host, "box", "readlink /tmp/tree/sub/link"),
        "../top.txt\n"
    );
    assert_eq!(sh(&host, "box", "stat -c %a /tmp/tree/sub"), "750\n");
    // To a missing path, which becomes the copy.
    host.hullctl_ok(&["cp", arg(&tree), "box:/new"]);
    assert_eq!(sh(&host, "box", "cat /new/top.txt"), "top\n");
    // The contents with /., merged into an existing directory.
    sh(&host, "box", "mkdir /merge && echo old > /merge/old.txt");
    host.hullctl_ok(&["cp", &format!("{}/.", arg(&tree)), "box:/merge"]);
    assert_eq!(
        sh(&host, "box", "ls /merge | sort | tr '\\n' ' '"),
        "old.txt sub top.txt "
    );

    let onto_file = host.hullctl(&["cp", arg(&tree), "box:/merge/old.txt"]);
    assert_ne!(onto_file.code, Some(0), "{onto_file}");
    assert!(onto_file.stderr.contains("it is a file"), "{onto_file}");

    // Back to the host.
    let back = work.path().join("back");
    host.hullctl_ok(&["cp", "box:/tmp/tree", arg(&back)]);
    assert_eq!(
        fs::read_to_string(back.join("sub/deeper/leaf.txt")).unwrap(),
        "leaf\n"
    );
    assert_eq!(
        fs::read_link(back.join("sub/link")).unwrap(),
        Path::new("../top.txt")
    );
    assert_eq!(
        fs::metadata(back.join("sub")).unwrap().mode() & 0o7777,
        0o750
    );
    host.hullctl_ok(&["cp", "box:/tmp/tree", arg(&back)]);
    assert_eq!(
        fs::read_to_string(back.join("tree/top.txt")).unwrap(),
        "top\n",
        "a second copy goes inside"
    );
    let contents = work.path().join("contents");
    fs::create_dir(&contents).unwrap();
    host.hullctl_ok(&["cp", "box:/tmp/tree/sub/.", arg(&contents)]);
    assert!(contents.join("deeper/leaf.txt").is_file());
    assert!(!contents.join("sub").exists());
}

#[test]
fn cp_into_stopped_container() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    host.hullctl_ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "later",
        &host.busybox,
        "cat",
        "/greeting",
    ]);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("greeting");
    fs::write(&file, "copied before start\n").unwrap();
    host.hullctl_ok(&["cp", arg(&file), "later:/"]);
    host.hullctl_ok(&["start", "later"]);
    let waited = host.hullctl_ok(&["wait", "later"]);
    assert_eq!(waited.stdout, "0\n", "cat found the copied file: {waited}");
    let id = container_id(&host, "later");
    let log = host.container_dir(&id).join(format!("{id}-json.log"));
    let mut output = String::new();
    // The shim may still be copying the output when the exit is reported.
    for _ in 0..50 {
        output = fs::read_to_string(&log).unwrap_or_default();
        if output.contains("copied before start") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(output.contains("copied before start"), "{output:?}");

    // Exited now: copy out of it, and into it again.
    let out = work.path().join("out");
    host.hullctl_ok(&["cp", "later:/greeting", arg(&out)]);
    assert_eq!(fs::read_to_string(&out).unwrap(), "copied before start\n");
    fs::write(&file, "second\n").unwrap();
    host.hullctl_ok(&["cp", arg(&file), "later:/greeting"]);
    let rootfs = host.container_dir(&id).join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("greeting")).unwrap(),
        "second\n"
    );
    host.hullctl_ok(&["cp", "later:/greeting", arg(&out)]);
    assert_eq!(fs::read_to_string(&out).unwrap(), "second\n");
}

#[test]
fn cp_into_volume_mount() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let work = tempfile::tempdir().unwrap();
    let bind = work.path().join("bind");
    fs::create_dir(&bind).unwrap();
    let bind_flag = format!("{}:/bound:ro", arg(&bind));
    let run = host.hullctl(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "box",
        "-v",
        "cpdata:/srv/data",
        "-v",
        &bind_flag,
        &host.busybox,
        "sleep",
        "1000",
    ]);
    assert_eq!(run.code, Some(0), "{run}");
    let file = work.path().join("f.txt");
    fs::write(&file, "in the volume\n").unwrap();

    host.hullctl_ok(&["cp", arg(&file), "box:/srv/data/"]);
    assert_eq!(sh(&host, "box", "cat /srv/data/f.txt"), "in the volume\n");
    let volume = host.root().join("volumes/cpdata/_data/f.txt");
    assert_eq!(fs::read_to_string(volume).unwrap(), "in the volume\n");

    let read_only = host.hullctl(&["cp", arg(&file), "box:/bound/"]);
    assert_ne!(read_only.code, Some(0), "{read_only}");
    assert!(read_only.stderr.contains("read-only"), "{read_only}");
    assert!(!bind.join("f.txt").exists());

    fs::write(bind.join("host.txt"), "from the bind\n").unwrap();
    let out = work.path().join("out.txt");
    host.hullctl_ok(&["cp", "box:/bound/host.txt", arg(&out)]);
    assert_eq!(fs::read_to_string(&out).unwrap(), "from the bind\n");

    // A directory copy reads a mount inside it from the mount's source.
    let whole = work.path().join("whole");
    host.hullctl_ok(&["cp", "box:/srv", arg(&whole)]);
    assert_eq!(
        fs::read_to_string(whole.join("data/f.txt")).unwrap(),
        "in the volume\n"
    );
    let rootfs = host
        .container_dir(&container_id(&host, "box"))
        .join("rootfs");
    assert!(
        !rootfs.join("srv/data/f.txt").exists(),
        "the copy went under the mount point"
    );
}

#[test]
fn cp_symlinks_stay_in_container() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    run_sleeper(&host, "box", &[]);
    let work = tempfile::tempdir().unwrap();
    let secret_dir = work.path().join("secret");
    fs::create_dir(&secret_dir).unwrap();
    let secret = secret_dir.join("file");
    fs::write(&secret, "host secret\n").unwrap();
    let payload = work.path().join("payload");
    fs::write(&payload, "payload\n").unwrap();
    let host_passwd = fs::read("/etc/passwd").unwrap();
    let container_passwd = sh(&host, "box", "cat /etc/passwd");

    sh(
        &host,
        "box",
        &format!(
            "ln -s /etc/passwd /tmp/pw; ln -s {secret} /tmp/abs; ln -s ../../../../../.. /tmp/up; ln -s {dir} /tmp/dirlink",
            secret = arg(&secret),
            dir = arg(&secret_dir)
        ),
    );

    // Reading: the link itself, or with -L its target in the container.
    let link_copy = work.path().join("pw-link");
    host.hullctl_ok(&["cp", "box:/tmp/pw", arg(&link_copy)]);
    assert_eq!(fs::read_link(&link_copy).unwrap(), Path::new("/etc/passwd"));
    let followed = work.path().join("pw-followed");
    host.hullctl_ok(&["cp", "-L", "box:/tmp/pw", arg(&followed)]);
    assert_eq!(fs::read_to_string(&followed).unwrap(), container_passwd);
    let escaped = host.hullctl(&[
        "cp",
        "-L",
        "box:/tmp/abs",
        arg(&work.path().join("abs-out")),
    ]);
    assert_ne!(escaped.code, Some(0), "the host file was read: {escaped}");
    assert!(!work.path().join("abs-out").exists());
    let up = format!("box:/tmp/up{}", arg(&secret));
    let escaped = host.hullctl(&["cp", &up, arg(&work.path().join("up-out"))]);
    assert_ne!(escaped.code, Some(0), "the host file was read: {escaped}");
    assert!(!work.path().join("up-out").exists());

    // Writing through the links lands inside the rootfs, where the same
    // directory exists.
    let into_missing = host.hullctl(&["cp", arg(&payload), "box:/tmp/dirlink/"]);
    assert_ne!(
        into_missing.code,
        Some(0),
        "the link's target is missing in the container: {into_missing}"
    );
    sh(&host, "box", &format!("mkdir -p {}", arg(&secret_dir)));
    host.hullctl_ok(&["cp", arg(&payload), "box:/tmp/abs"]);
    let rootfs = host
        .container_dir(&container_id(&host, "box"))
        .join("rootfs");
    let inside = rootfs.join(secret.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read_to_string(&inside).unwrap(),
        "payload\n",
        "the copy lands in the rootfs"
    );
    fs::remove_file(&inside).unwrap();
    host.hullctl_ok(&["cp", arg(&payload), &format!("box:/tmp/up{}", arg(&secret))]);
    assert_eq!(
        fs::read_to_string(&inside).unwrap(),
        "payload\n",
        "the copy lands in the rootfs"
    );
    host.hullctl_ok(&["cp", arg(&payload), "box:/tmp/dirlink/"]);
    assert_eq!(
        fs::read_to_string(inside.with_file_name("payload")).unwrap(),
        "payload\n"
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host secret\n");
    assert_eq!(
        fs::read_dir(&secret_dir).unwrap().count(),
        1,
        "nothing was added to the host directory"
    );
    host.hullctl_ok(&["cp", arg(&payload), "box:/tmp/pw"]);
    assert_eq!(sh(&host, "box", "cat /etc/passwd"), "payload\n");
    assert_eq!(
        fs::read("/etc/passwd").unwrap(),
        host_passwd,
        "the host's /etc/passwd changed"
    );

    // A tree with a symlink copied out keeps it as a link.
    let out = work.path().join("tmp-copy");
    host.hullctl_ok(&["cp", "box:/tmp", arg(&out)]);
    assert_eq!(fs::read_link(out.join("abs")).unwrap(), secret);
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host secret\n");
}

#[test]
fn cp_tar_streams() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    run_sleeper(&host, "box", &[]);
    sh(
        &host,
        "box",
        "mkdir -p /out/d && echo one > /out/d/one && ln -s one /out/d/link",
    );

    let (output, bytes) = host.hullctl_with_input(&["cp", "box:/out/d", "-"], b"");
    assert_eq!(output.code, Some(0), "{output}");
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|entry| entry.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["d", "d/link", "d/one"], "{output}");

    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(3);
    builder
        .append_data(&mut header, "in/new.txt", &b"new"[..])
        .unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder
        .append_link(&mut link, "in/etc-link", "/etc")
        .unwrap();
    let mut through = tar::Header::new_gnu();
    through.set_mode(0o644);
    through.set_size(4);
    builder
        .append_data(&mut through, "in/etc-link/via-link", &b"link"[..])
        .unwrap();
    let archive = builder.into_inner().unwrap();
    let (output, _) = host.hullctl_with_input(&["cp", "-", "box:/tmp"], &archive);
    assert_eq!(output.code, Some(0), "{output}");
    assert_eq!(sh(&host, "box", "cat /tmp/in/new.txt"), "new");
    assert_eq!(
        sh(&host, "box", "cat /etc/via-link"),
        "link",
        "a link in the archive resolves in the container"
    );
    assert!(!Path::new("/etc/via-link").exists());

    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(1);
    // The tar crate refuses to write `..` paths, so set the name bytes.
    header.as_old_mut().name[..13].copy_from_slice(b"../../escaped");
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    let climbing = builder.into_inner().unwrap();
    let (output, _) = host.hullctl_with_input(&["cp", "-", "box:/tmp"], &climbing);
    assert_ne!(output.code, Some(0), "{output}");
    assert!(output.stderr.contains("climbs out"), "{output}");

    let (output, _) = host.hullctl_with_input(&["cp", "-", "box:/tmp/in/new.txt"], &archive);
    assert_ne!(output.code, Some(0), "{output}");
    assert!(
        output.stderr.contains("not an existing directory"),
        "{output}"
    );
}

#[test]
fn cp_reports_bad_paths() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    run_sleeper(&host, "box", &[]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");

    let missing = host.hullctl(&["cp", "box:/no/such/file", arg(&out)]);
    assert_ne!(missing.code, Some(0), "{missing}");
    assert!(missing.stderr.contains("/no"), "{missing}");
    assert!(
        missing.stderr.contains("No such file or directory"),
        "{missing}"
    );
    let missing_last = host.hullctl(&["cp", "box:/etc/nosuch", arg(&out)]);
    assert_ne!(missing_last.code, Some(0), "{missing_last}");
    assert!(
        missing_last.stderr.contains("box:/etc/nosuch"),
        "{missing_last}"
    );
    assert!(!out.exists());

    let unknown = host.hullctl(&["cp", "nosuch:/etc/passwd", arg(&out)]);
    assert_ne!(unknown.code, Some(0), "{unknown}");
    assert!(
        unknown.stderr.contains("no such container: nosuch"),
        "{unknown}"
    );

    let host_missing = host.hullctl(&["cp", arg(&work.path().join("absent")), "box:/tmp"]);
    assert_ne!(host_missing.code, Some(0), "{host_missing}");
    assert!(host_missing.stderr.contains("absent"), "{host_missing}");

    let no_parent = host.hullctl(&["cp", "box:/etc/passwd", arg(&work.path().join("a/b"))]);
    assert_ne!(no_parent.code, Some(0), "{no_parent}");
    assert!(no_parent.stderr.contains("does not exist"), "{no_parent}");

    let no_container_parent = host.hullctl(&["cp", "/etc/hostname", "box:/no/such/dir"]);
    assert_ne!(no_container_parent.code, Some(0), "{no_container_parent}");

    let both = host.hullctl(&["cp", "box:/etc/passwd", "box:/tmp"]);
    assert_ne!(both.code, Some(0), "{both}");
    assert!(both.stderr.contains("between containers"), "{both}");
    let neither = host.hullctl(&["cp", "/etc/hostname", arg(&out)]);
    assert_ne!(neither.code, Some(0), "{neither}");
    assert!(neither.stderr.contains("CONTAINER:PATH"), "{neither}");
    let proc_mount = host.hullctl(&["cp", "box:/proc/self/environ", arg(&out)]);
    assert_ne!(proc_mount.code, Some(0), "{proc_mount}");
    assert!(proc_mount.stderr.contains("proc mount"), "{proc_mount}");
}
