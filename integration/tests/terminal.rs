//! Terminals: the pty master sent over `--console-socket`, and foreground
//! `run -t` and `exec -t` driven through a real pty.

use std::time::Duration;

use hull_integration::pty::{read_until, write, ConsoleSocket, PtySession};
use hull_integration::{require_root, unique_id, Bundle, Runtime};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn console_socket_receives_the_init_pty() {
    require_root!();
    let runtime = Runtime::hull();
    let console = ConsoleSocket::new();
    let mut bundle = Bundle::busybox(&["sh"]);
    bundle.config["process"]["terminal"] = serde_json::json!(true);
    bundle.config["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 101});
    let id = unique_id("console");
    let socket = console.path().to_str().unwrap().to_owned();
    // create returns once the master is sent, so it runs beside the accept.
    let create = std::thread::scope(|scope| {
        let create =
            scope.spawn(|| runtime.create_with(&id, &bundle, &["--console-socket", &socket]));
        let master = console.receive_master();
        let output = create.join().unwrap();
        (output, master)
    });
    let (output, master) = create;
    output.expect_success();
    runtime.start(&id).expect_success();
    write(&master, "tty; stty size; echo done-$((6*7))\n");
    let text = read_until(&master, "done-42", WAIT);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("33 101"), "{text}");
    write(&master, "exit 4\n");
    assert!(runtime.wait_for_status(&id, "stopped", WAIT));
    runtime.delete(&id).expect_success();
}

#[test]
fn exec_tty_through_console_socket() {
    require_root!();
    let runtime = Runtime::hull();
    let id = unique_id("exectty");
    let bundle = Bundle::busybox(&["sleep", "600"]);
    runtime.run_detached(&id, &bundle).expect_success();
    let console = ConsoleSocket::new();
    let socket = console.path().to_str().unwrap().to_owned();
    let (output, master) = std::thread::scope(|scope| {
        let exec = scope
            .spawn(|| runtime.exec(&["exec", "-d", "-t", "--console-socket", &socket, &id, "sh"]));
        let master = console.receive_master();
        (exec.join().unwrap(), master)
    });
    output.expect_success();
    write(&master, "tty; echo ok-$((1+1))\n");
    let text = read_until(&master, "ok-2", WAIT);
    assert!(text.contains("/dev/pts/"), "{text}");
    write(&master, "exit\n");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn run_tty_in_foreground_through_a_pty() {
    require_root!();
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sh"]);
    bundle.config["process"]["terminal"] = serde_json::json!(true);
    bundle.write();
    let id = unique_id("runtty");
    let command = runtime.command(&["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let mut session = PtySession::spawn(command);
    write(&session.master, "tty; echo in-$((2*3))\n");
    let text = read_until(&session.master, "in-6", WAIT);
    assert!(text.contains("/dev/pts/0"), "{text}");
    write(&session.master, "exit 7\n");
    assert_eq!(session.wait(WAIT), Some(7));
    assert!(!runtime.state_dir(&id).exists());
}

#[test]
fn exec_tty_in_foreground_through_a_pty() {
    require_root!();
    let runtime = Runtime::hull();
    let id = unique_id("exectty");
    let bundle = Bundle::busybox(&["sleep", "600"]);
    runtime.run_detached(&id, &bundle).expect_success();
    let command = runtime.command(&["exec", "-t", &id, "sh"]);
    let mut session = PtySession::spawn(command);
    write(&session.master, "tty; echo ex-$((3*3))\n");
    let text = read_until(&session.master, "ex-9", WAIT);
    assert!(text.contains("/dev/pts/"), "{text}");
    write(&session.master, "exit 3\n");
    assert_eq!(session.wait(WAIT), Some(3));
    assert_eq!(runtime.status(&id), "running");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn console_socket_pty_keeps_onlcr() {
    require_root!();
    let runtime = Runtime::hull();
    let console = ConsoleSocket::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "printf 'one\\ntwo\\nend\\n'; sleep 600"]);
    bundle.config["process"]["terminal"] = serde_json::json!(true);
    let id = unique_id("onlcr");
    let socket = console.path().to_str().unwrap().to_owned();
    let (output, master) = std::thread::scope(|scope| {
        let create =
            scope.spawn(|| runtime.create_with(&id, &bundle, &["--console-socket", &socket]));
        let master = console.receive_master();
        (create.join().unwrap(), master)
    });
    output.expect_success();
    runtime.start(&id).expect_success();
    // The receiver of the master gets the pty as the kernel made it, with
    // ONLCR on, as runc 1.1.5 leaves it.
    let text = read_until(&master, "end\r\n", WAIT);
    assert_eq!(text, "one\r\ntwo\r\nend\r\n");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn tty_owned_by_the_process_user() {
    require_root!();
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sh", "-c", "stat -c %u:%g $(tty)"]);
    bundle.config["process"]["terminal"] = serde_json::json!(true);
    bundle.config["process"]["user"] = serde_json::json!({ "uid": 1000, "gid": 100 });
    bundle.write();
    let id = unique_id("ttyowner");
    let command = runtime.command(&["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let mut session = PtySession::spawn(command);
    let text = read_until(&session.master, ":5", WAIT);
    // The devpts group (5, tty) stays; the owner is the process's uid.
    assert!(text.contains("1000:5"), "{text}");
    assert_eq!(session.wait(WAIT), Some(0));
}
