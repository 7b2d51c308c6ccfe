"""A fake ComfyUI folder for the launcher tests, and a way to drive ``offline_runware.py``.

The fake ``main.py`` records what ComfyUI would be started with (argv, environment, Python,
working folder) in ``record.json``, serves a page on ``--port``, and on Ctrl-C (SIGINT)
writes ``stopped`` and exits like ComfyUI does. ``--die-after S`` makes it exit with code 3
after S seconds, as a crashing ComfyUI would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = REPO_ROOT / "offline_runware.py"

FAKE_MAIN = r'''
import http.server, json, os, sys, time
from pathlib import Path

here = Path(__file__).resolve().parent
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
(here / "record.json").write_text(json.dumps({
    "argv": sys.argv, "env": dict(os.environ), "executable": sys.executable,
    "cwd": os.getcwd(),
}))
if "--die-after" in args:
    time.sleep(float(args[args.index("--die-after") + 1]))
    sys.exit(3)


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"fake ComfyUI page"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
try:
    server.serve_forever(poll_interval=0.05)
except KeyboardInterrupt:
    (here / "stopped").write_text("SIGINT")
'''


def make_fake_comfyui(folder: Path, *, install_pack: bool = True) -> Path:
    """``folder`` becomes a ComfyUI: main.py, custom_nodes/ (with this pack linked in)."""
    (folder / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(FAKE_MAIN)
    if install_pack:
        (folder / "custom_nodes" / "ComfyUI-Runware-Ovi-Sync3").symlink_to(
            REPO_ROOT, target_is_directory=True)
    return folder


def wait_for_record(comfy: Path, timeout: float = 30.0) -> dict:
    """What the fake ComfyUI in ``comfy`` was started with, once it has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads((comfy / "record.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError("the fake ComfyUI never started")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _interruptible() -> None:
    # A shell that starts CI in the background ignores SIGINT, and children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launcher:
    """``offline_runware.py`` (or any command) as a child process, its output collected."""

    def __init__(self, args: list[str], *, cwd: Path | None = None,
                 env: dict[str, str] | None = None, command: list[str] | None = None) -> None:
        self.lines: list[str] = []
        cmd = command if command is not None else [sys.executable, str(LAUNCHER), *args]
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_interruptible if os.name != "nt" else None,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """The first output line containing ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                for line in self.lines:
                    if text in line:
                        return line
                raise AssertionError(f"exited ({self.proc.returncode}) before printing "
                                     f"{text!r}:\n{self.output}")
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} within {timeout:g} s:\n{self.output}")

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C (SIGINT to the launcher only), then its exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def ping(api_url: str, key: str) -> tuple[int, dict]:
    """A Runware ping with ``key``: (HTTP status, reply)."""
    request = urllib.request.Request(
        api_url, data=json.dumps([{"taskType": "ping", "ping": True}]).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
