#!/usr/bin/python3
"""A stand-in for `criu swrk FD` that speaks criu's RPC protocol with the
messages of Debian's pycriu (criu's own rpc.proto), for tests on hosts where
criu cannot dump.

It appends every request it receives, decoded, as one JSON line to the file
named by FAKE_CRIU_RECORD. DUMP kills the dumped pid unless leave_running is
set. RESTORE starts `/bin/sleep 1000` as the restored init and reports it
through the setup-namespaces and post-restore notifications. With
FAKE_CRIU_FAIL set, DUMP, PRE_DUMP and RESTORE fail after writing a log with
an error line, as criu does.
"""

import json
import os
import signal
import socket
import sys
import time

from google.protobuf.json_format import MessageToDict
from pycriu import rpc_pb2 as rpc


def record(request):
    path = os.environ.get("FAKE_CRIU_RECORD")
    if not path:
        return
    entry = MessageToDict(request, preserving_proto_field_name=True)
    opts = request.opts
    if opts.HasField("images_dir_fd"):
        # The descriptor numbers are only meaningful in this process.
        entry["images_dir"] = os.readlink(f"/proc/self/fd/{opts.images_dir_fd}")
    if opts.HasField("work_dir_fd"):
        entry["work_dir"] = os.readlink(f"/proc/self/fd/{opts.work_dir_fd}")
    entry["inherited"] = {
        item.key: os.readlink(f"/proc/self/fd/{item.fd}") for item in opts.inherit_fd
    }
    with open(path, "a") as file:
        file.write(json.dumps(entry) + "\n")


def send(sock, message):
    sock.send(message.SerializeToString())


def receive(sock):
    data = sock.recv(1 << 20)
    if not data:
        return None
    request = rpc.criu_req()
    request.ParseFromString(data)
    return request


def notify(sock, script, pid):
    response = rpc.criu_resp(type=rpc.NOTIFY, success=True)
    response.notify.script = script
    response.notify.pid = pid
    send(sock, response)
    reply = receive(sock)
    return reply is not None and reply.type == rpc.NOTIFY and reply.notify_success


def write_log(opts, name, lines):
    directory_fd = opts.work_dir_fd if opts.HasField("work_dir_fd") else opts.images_dir_fd
    path = os.path.join(os.readlink(f"/proc/self/fd/{directory_fd}"), name)
    with open(path, "w") as file:
        for number, line in enumerate(lines):
            file.write(f"(00.{number:06d}) {line}\n")


def wait_gone(pid):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as file:
                state = file.read().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                return
        except FileNotFoundError:
            return
        time.sleep(0.01)


def dump(sock, request):
    opts = request.opts
    if os.environ.get("FAKE_CRIU_FAIL"):
        write_log(opts, opts.log_file, [
            "Dumping processes (pid: %d)" % opts.pid,
            "Error (fake-criu.c:1): fake dump failure",
            "Unfreezing tasks into 1",
        ])
        send(sock, rpc.criu_resp(type=request.type, success=False, cr_errno=0))
        return
    write_log(opts, opts.log_file, ["Dumping finished successfully"])
    if request.type == rpc.DUMP and not opts.leave_running:
        os.kill(opts.pid, signal.SIGKILL)
        wait_gone(opts.pid)
    if not notify(sock, "post-dump", opts.pid):
        send(sock, rpc.criu_resp(type=request.type, success=False))
        return
    send(sock, rpc.criu_resp(type=request.type, success=True))


def restore(sock, request):
    opts = request.opts
    if os.environ.get("FAKE_CRIU_FAIL"):
        write_log(opts, opts.log_file, [
            "Restoring processes",
            "Error (fake-criu.c:2): fake restore failure",
        ])
        send(sock, rpc.criu_resp(type=rpc.RESTORE, success=False, cr_errno=0))
        return
    pid = os.fork()
    if pid == 0:
        os.closerange(3, 4096)
        os.execv("/bin/sleep", ["sleep", "1000"])
    write_log(opts, opts.log_file, ["Restore finished successfully"])
    if not notify(sock, "setup-namespaces", pid) or not notify(sock, "post-restore", pid):
        os.kill(pid, signal.SIGKILL)
        send(sock, rpc.criu_resp(type=rpc.RESTORE, success=False))
        return
    response = rpc.criu_resp(type=rpc.RESTORE, success=True)
    response.restore.pid = pid
    send(sock, response)


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "swrk":
        sys.exit("usage: fake-criu swrk FD")
    sock = socket.socket(fileno=int(sys.argv[2]))
    while True:
        request = receive(sock)
        if request is None:
            return
        record(request)
        if request.type == rpc.VERSION:
            response = rpc.criu_resp(type=rpc.VERSION, success=True)
            response.version.major_number = 3
            response.version.minor_number = 17
            response.version.sublevel = 1
            send(sock, response)
        elif request.type == rpc.FEATURE_CHECK:
            response = rpc.criu_resp(type=rpc.FEATURE_CHECK, success=True)
            response.features.mem_track = True
            response.features.lazy_pages = True
            send(sock, response)
        elif request.type in (rpc.DUMP, rpc.PRE_DUMP):
            dump(sock, request)
        elif request.type == rpc.RESTORE:
            restore(sock, request)
        else:
            send(sock, rpc.criu_resp(type=request.type, success=False))


if __name__ == "__main__":
    main()
