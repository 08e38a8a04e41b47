//! `hullctl volume ...` end to end: each test runs the built hullctl on a
//! store root and run root of its own in a temporary directory.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hull_integration::output::Output;
use hull_integration::{hullctl_binary, require_root};
use serde_json::Value;

/// A store root and run root for hullctl, removed on drop.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn volumes(&self) -> PathBuf {
        self.root().join("volumes")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(hullctl_binary());
        command
            .arg("--root")
            .arg(self.root())
            .arg("--run-root")
            .arg(self.dir.path().join("run"))
            // Volume commands never reach the image service; a socket that
            // cannot exist makes any attempt fail.
            .arg("--address")
            .arg(self.dir.path().join("no-daemon.sock"))
            .args(args);
        command
    }

    /// Runs hullctl with `input` on stdin.
    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hullctl");
        let mut stdin = child.stdin.take().expect("hullctl's stdin");
        stdin
            .write_all(input.as_bytes())
            .expect("write hullctl's stdin");
        drop(stdin);
        let output = child.wait_with_output().expect("wait for hullctl");
        Output {
            command: format!("hullctl {}", args.join(" ")),
            code: output.status.code(),
            signal: output.status.signal(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, "")
    }

    #[track_caller]
    fn run_ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        output.expect_success();
        output
    }

    /// Lists volume names with `volume ls -q`.
    fn names(&self) -> Vec<String> {
        let output = self.run_ok(&["volume", "ls", "-q"]);
        output.stdout.lines().map(str::to_string).collect()
    }

    fn data(&self, name: &str) -> PathBuf {
        self.volumes().join(name).join("_data")
    }

    /// Writes a container record that uses `volumes`, in the form that
    /// hullctl reads.
    fn add_container(&self, id: &str, name: &str, volumes: &[&str]) -> PathBuf {
        let dir = self.root().join("containers").join(id);
        fs::create_dir_all(&dir).unwrap();
        let record = serde_json::json!({"id": id, "name": name, "volumes": volumes});
        fs::write(dir.join("container.json"), record.to_string()).unwrap();
        dir
    }
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&output.stdout).unwrap_or_else(|e| panic!("{e}: {output}"))
}

#[test]
fn create_list_inspect_remove() {
    require_root!();
    let store = Store::new();
    let created = store.run_ok(&[
        "volume", "create", "--label", "tier=db", "--label", "x=", "pgdata",
    ]);
    assert_eq!(created.stdout, "pgdata\n");
    let anonymous = store.run_ok(&["volume", "create"]);
    let anonymous = anonymous.stdout.trim().to_string();
    assert_eq!(anonymous.len(), 64, "{anonymous}");

    let table = store.run_ok(&["volume", "ls"]);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines[0], "DRIVER    VOLUME NAME", "{table}");
    assert!(lines.contains(&"local     pgdata"), "{table}");
    assert!(
        lines.contains(&format!("local     {anonymous}").as_str()),
        "{table}"
    );
    assert_eq!(lines.len(), 3, "{table}");

    let mut expected = vec![anonymous.clone(), String::from("pgdata")];
    expected.sort();
    assert_eq!(store.names(), expected);

    let listed = json(&store.run_ok(&["volume", "ls", "--format", "json"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");

    let inspect = store.run_ok(&["volume", "inspect", "pgdata"]);
    let inspected = json(&inspect);
    let volume = &inspected[0];
    assert_eq!(volume["Name"], "pgdata", "{inspect}");
    assert_eq!(volume["Driver"], "local", "{inspect}");
    assert_eq!(volume["Scope"], "local", "{inspect}");
    assert_eq!(volume["Labels"]["tier"], "db", "{inspect}");
    assert_eq!(volume["Labels"]["x"], "", "{inspect}");
    assert_eq!(volume["Anonymous"], false, "{inspect}");
    let mountpoint = volume["Mountpoint"].as_str().unwrap_or_default();
    assert_eq!(Path::new(mountpoint), store.data("pgdata"), "{inspect}");
    assert!(Path::new(mountpoint).is_dir(), "{inspect}");
    let created_at = volume["CreatedAt"].as_str().unwrap_or_default();
    assert!(
        created_at.ends_with('Z') && created_at.contains('T'),
        "{inspect}"
    );

    // Creating an existing volume returns it unchanged.
    store.run_ok(&["volume", "create", "--label", "tier=web", "pgdata"]);
    let again = json(&store.run_ok(&["volume", "inspect", "pgdata"]));
    assert_eq!(again[0]["Labels"]["tier"], "db");
    assert_eq!(again[0]["CreatedAt"], volume["CreatedAt"]);

    let removed = store.run_ok(&["volume", "rm", "pgdata", &anonymous]);
    assert_eq!(removed.stdout, format!("pgdata\n{anonymous}\n"));
    assert!(store.names().is_empty());
    let table = store.run_ok(&["volume", "ls"]);
    assert_eq!(table.stdout, "DRIVER    VOLUME NAME\n");
    assert!(!store.volumes().join("pgdata").exists());
}

#[test]
fn volume_in_use_is_kept() {
    require_root!();
    let store = Store::new();
    store.run_ok(&["volume", "create", "shared"]);
    fs::write(store.data("shared").join("keep"), "precious").unwrap();
    let container = store.add_container("c0ffee", "web", &["shared"]);

    let rm = store.run(&["volume", "rm", "shared"]);
    rm.expect_code(1);
    assert!(
        rm.stderr
            .contains("volume shared is in use by container web"),
        "{rm}"
    );
    let forced = store.run(&["volume", "rm", "-f", "shared"]);
    forced.expect_code(1);
    assert!(forced.stderr.contains("in use"), "{forced}");
    let prune = store.run_ok(&["volume", "prune", "--all", "--force"]);
    assert_eq!(prune.stdout, "Total reclaimed space: 0B\n", "{prune}");
    assert_eq!(
        fs::read_to_string(store.data("shared").join("keep")).unwrap(),
        "precious"
    );

    // A container record without a name is named by its id.
    fs::write(
        container.join("container.json"),
        r#"{"id": "c0ffee", "volumes": ["shared"]}"#,
    )
    .unwrap();
    let rm = store.run(&["volume", "rm", "shared"]);
    assert!(rm.stderr.contains("in use by container c0ffee"), "{rm}");

    fs::remove_dir_all(&container).unwrap();
    store.run_ok(&["volume", "rm", "shared"]);
    assert!(store.names().is_empty());
}

#[test]
fn unreadable_container_record_blocks_removal() {
    require_root!();
    let store = Store::new();
    store.run_ok(&["volume", "create", "data"]);
    let half = store.root().join("containers").join("halfmade");
    fs::create_dir_all(&half).unwrap();

    let rm = store.run(&["volume", "rm", "data"]);
    rm.expect_code(1);
    assert!(rm.stderr.contains("halfmade"), "{rm}");
    assert!(rm.stderr.contains("container.json"), "{rm}");
    assert_eq!(store.names(), ["data"]);

    fs::write(half.join("container.json"), "{truncated").unwrap();
    store.run(&["volume", "rm", "data"]).expect_code(1);

    fs::write(
        half.join("container.json"),
        r#"{"id": "halfmade", "volumes": []}"#,
    )
    .unwrap();
    store.run_ok(&["volume", "rm", "data"]);
}

#[test]
fn prune_removes_unused_anonymous_volumes() {
    require_root!();
    let store = Store::new();
    store.run_ok(&["volume", "create", "named"]);
    let unused = store
        .run_ok(&["volume", "create"])
        .stdout
        .trim()
        .to_string();
    let used = store
        .run_ok(&["volume", "create"])
        .stdout
        .trim()
        .to_string();
    fs::write(store.data(&unused).join("blob"), vec![7u8; 1500]).unwrap();
    fs::write(store.data("named").join("blob"), vec![7u8; 2500]).unwrap();
    store.add_container("c1", "db", &[&used]);

    let declined = store.run_with_input(&["volume", "prune"], "n\n");
    declined.expect_code(1);
    assert!(declined.stdout.contains("[y/N]"), "{declined}");
    assert!(declined.stderr.contains("cancelled"), "{declined}");
    assert_eq!(store.names().len(), 3);

    let pruned = store.run_with_input(&["volume", "prune"], "y\n");
    pruned.expect_success();
    assert!(
        pruned.stdout.contains(&format!(
            "Deleted Volumes:\n{unused}\n\nTotal reclaimed space: 1.5kB\n"
        )),
        "{pruned}"
    );
    let mut expected = vec![String::from("named"), used.clone()];
    expected.sort();
    assert_eq!(store.names(), expected);

    let all = store.run_ok(&["volume", "prune", "-a", "-f"]);
    assert_eq!(
        all.stdout,
        "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 2.5kB\n"
    );
    assert_eq!(store.names(), [used]);
}

#[test]
fn bad_input_named_in_errors() {
    require_root!();
    let store = Store::new();
    store.run_ok(&["volume", "create", "good"]);

    for name in ["x", "../up", "a/b", "-dash", "sp ace"] {
        let create = store.run(&["volume", "create", "--", name]);
        create.expect_code(1);
        assert!(
            create
                .stderr
                .contains(&format!("invalid volume name {name:?}")),
            "{create}"
        );
    }
    assert!(!store.root().join("up").exists());

    let label = store.run(&["volume", "create", "--label", "=v", "other"]);
    label.expect_code(1);
    assert!(label.stderr.contains("invalid label \"=v\""), "{label}");

    let inspect = store.run(&["volume", "inspect", "good", "missing"]);
    inspect.expect_code(1);
    assert!(
        inspect.stderr.contains("no such volume: missing"),
        "{inspect}"
    );
    assert_eq!(json(&inspect)[0]["Name"], "good", "{inspect}");

    let rm = store.run(&["volume", "rm", "missing", "good"]);
    rm.expect_code(1);
    assert!(rm.stderr.contains("no such volume: missing"), "{rm}");
    assert_eq!(rm.stdout, "good\n", "{rm}");
    store.run_ok(&["volume", "rm", "-f", "missing"]);

    let usage = store.run(&["volume"]);
    usage.expect_code(2);
    assert!(store.names().is_empty());
    // Nothing but volumes was written below the root.
    let entries: Vec<_> = fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["volumes"]);
}

#[test]
fn corrupt_record_does_not_hide_others() {
    require_root!();
    let store = Store::new();
    store.run_ok(&["volume", "create", "fine"]);
    store.run_ok(&["volume", "create", "broken"]);
    let record = store.volumes().join("broken/volume.json");
    fs::write(&record, "{").unwrap();

    let ls = store.run_ok(&["volume", "ls", "-q"]);
    assert_eq!(ls.stdout, "fine\n", "{ls}");
    assert!(ls.stderr.contains("broken"), "{ls}");
    let inspect = store.run(&["volume", "inspect", "broken"]);
    inspect.expect_code(1);
    assert!(
        inspect.stderr.contains(&record.display().to_string()),
        "{inspect}"
    );
}

#[test]
fn concurrent_commands_serialise() {
    require_root!();
    let store = Store::new();
    let spawn = |args: &[&str]| {
        store
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hullctl")
    };

    let creates: Vec<_> = (0..6)
        .map(|_| spawn(&["volume", "create", "race"]))
        .collect();
    for child in creates {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
        assert_eq!(output.stdout, b"race\n");
    }
    assert_eq!(store.names(), ["race"]);

    let removes: Vec<_> = (0..4).map(|_| spawn(&["volume", "rm", "race"])).collect();
    let mut removed = 0;
    for child in removes {
        let output = child.wait_with_output().unwrap();
        if output.status.success() {
            removed += 1;
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("no such volume: race"), "{stderr}");
        }
    }
    assert_eq!(removed, 1);
    assert!(store.names().is_empty());
}

#[test]
fn crash_leftovers_are_deleted() {
    require_root!();
    let store = Store::new();
    store.run_ok(&["volume", "create", "first"]);
    let removing = store.volumes().join(".removing-gone-123");
    let creating = store.volumes().join(".creating-half");
    fs::create_dir_all(removing.join("_data/deep")).unwrap();
    fs::write(removing.join("_data/deep/file"), "old").unwrap();
    fs::create_dir_all(creating.join("_data")).unwrap();
    assert_eq!(store.names(), ["first"]);

    store.run_ok(&["volume", "rm", "first"]);
    assert!(!removing.exists());
    assert!(!creating.exists());
}
