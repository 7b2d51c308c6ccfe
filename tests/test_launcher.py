"""``offline_runware.py``: the offline double alone, and together with a user's ComfyUI.

The ComfyUI here is a fake folder (``fake_comfyui.py``) whose main.py records how it was
started and serves a page; ``test_real_comfyui`` runs a real one when COMFYUI_PATH is set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
from fake_comfyui import (
    REPO_ROOT,
    Launcher,
    free_port,
    make_fake_comfyui,
    ping,
    port_open,
    wait_for_record,
)

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals and venv layout")


def _launcher_module():
    spec = importlib.util.spec_from_file_location("offline_runware_under_test",
                                                  REPO_ROOT / "offline_runware.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAUNCHER = _launcher_module()


def _gone(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_open(port):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def comfy(tmp_path):
    return make_fake_comfyui(tmp_path / "ComfyUI")


def test_starts_double_and_comfyui_and_ctrl_c_stops_both(comfy, tmp_path):
    port = free_port()
    user_env = {**os.environ, "RUNWARE_API_KEY": "users-real-key-do-not-send",
                "RUNWARE_API_URL": "https://api.runware.ai/v1"}
    (comfy / "user").mkdir()
    key_file = comfy / "user" / "runware_api_key"
    key_file.write_text("users-real-key-in-file\n")
    run = Launcher(["--comfyui", str(comfy), "--port", str(port), "--job-seconds", "0.2",
                    "--", "--cpu", "--listen", "127.0.0.1"], env=user_env, cwd=tmp_path)
    try:
        ready = run.wait_for("ComfyUI is ready:")
        assert ready.split("ready:")[1].strip() == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.read() == b"fake ComfyUI page"

        seen = wait_for_record(comfy)
        env = seen["env"]
        # ComfyUI is started in its folder, with our port first and the extra args after.
        assert Path(seen["cwd"]) == comfy
        assert seen["argv"][1:] == ["--port", str(port), "--cpu", "--listen", "127.0.0.1"]
        assert seen["executable"] == sys.executable  # no python_embeded or venv here
        # ... pointed at a live double that takes the throw-away key and no other.
        api_url = env["RUNWARE_API_URL"]
        assert api_url.startswith("http://127.0.0.1:") and api_url.endswith("/v1")
        key = env["RUNWARE_API_KEY"]
        assert key.startswith("offline-") and "users-real-key" not in key
        assert ping(api_url, key) == (200, {"data": [{"taskType": "ping", "pong": True}]})
        assert ping(api_url, "users-real-key-do-not-send")[0] == 401
        # A cache of its own: pretend results never land in the real cache.
        assert Path(env["RUNWARE_CACHE_DIR"]) == comfy / "output" / "runware_offline"
        assert "not in" not in run.output  # the pack is in custom_nodes: no warning
        double_port = int(api_url.split(":")[2].split("/")[0])

        assert run.interrupt() == 0
        assert (comfy / "stopped").read_text() == "SIGINT"  # ComfyUI stopped cleanly
        assert _gone(port) and _gone(double_port)
        assert "Stopping ComfyUI and the offline double" in run.output
    finally:
        run.kill()
    # The user's key file is untouched; the key never went anywhere but ComfyUI's env.
    assert key_file.read_text() == "users-real-key-in-file\n"
    assert sorted(p.name for p in (comfy / "user").iterdir()) == ["runware_api_key"]


def test_comfyui_dying_stops_the_double(tmp_path):
    comfy = make_fake_comfyui(tmp_path / "ComfyUI", install_pack=False)
    run = Launcher(["--comfyui", str(comfy), "--port", str(free_port()), "--",
                    "--die-after", "1"])
    try:
        assert run.wait(timeout=60) == 3  # ComfyUI's exit code
        seen = wait_for_record(comfy)
        double_port = int(seen["env"]["RUNWARE_API_URL"].split(":")[2].split("/")[0])
        assert _gone(double_port)
        assert "ComfyUI exited (code 3)" in run.output
        assert "is not in" in run.output  # a warning: the pack is not in custom_nodes
    finally:
        run.kill()


def test_double_dying_stops_comfyui(comfy):
    port = free_port()
    run = Launcher(["--comfyui", str(comfy), "--port", str(port)])
    try:
        run.wait_for("ComfyUI is ready:")
        children = psutil.Process(run.proc.pid).children()
        double = [c for c in children if "offline_runware.py" in " ".join(c.cmdline())]
        assert len(double) == 1 and len(children) == 2
        double[0].kill()
        assert run.wait(timeout=60) == 1
        assert "The offline double stopped" in run.output
        assert (comfy / "stopped").read_text() == "SIGINT"
        assert _gone(port)
    finally:
        run.kill()


def test_sigterm_stops_both_like_ctrl_c(comfy):
    port = free_port()
    run = Launcher(["--comfyui", str(comfy), "--port", str(port)])
    try:
        run.wait_for("ComfyUI is ready:")
        run.proc.send_signal(signal.SIGTERM)
        assert run.wait() == 0
        assert (comfy / "stopped").read_text() == "SIGINT"
        assert _gone(port)
    finally:
        run.kill()


def test_busy_port_is_refused_before_starting_anything(comfy):
    port = free_port()
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        run = Launcher(["--comfyui", str(comfy), "--port", str(port)])
        assert run.wait() == 2
    assert f"port {port}" in run.output and "--port" in run.output
    assert not (comfy / "record.json").exists()


def test_missing_comfyui_folder_is_a_clear_error(tmp_path):
    run = Launcher(["--comfyui", str(tmp_path)])
    assert run.wait() != 0
    assert "no ComfyUI in" in run.output and "main.py" in run.output


def _wrapper_python(path: Path, log: Path) -> None:
    """A 'python' that notes each start in ``log``, then runs the real one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{sys.executable}" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_uses_the_venv_beside_comfyui_for_both_processes(comfy, tmp_path):
    log = tmp_path / "venv-python.log"
    _wrapper_python(comfy / "venv" / "bin" / "python", log)
    run = Launcher(["--comfyui", str(comfy), "--port", str(free_port())])
    try:
        run.wait_for("ComfyUI is ready:")
        assert str(comfy / "venv") in run.output  # says which Python it uses
        starts = log.read_text().splitlines()
        assert len(starts) == 2
        assert starts[0].split()[0] == str(REPO_ROOT / "offline_runware.py")  # the double
        assert starts[1].split()[0] == "main.py"  # ComfyUI
        assert run.interrupt() == 0
    finally:
        run.kill()


def test_a_python_without_the_requirements_is_a_clear_error(comfy, tmp_path):
    bare = tmp_path / "bare-python"  # no site-packages: no av, no jsonschema
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    bare.chmod(0o755)
    run = Launcher(["--comfyui", str(comfy), "--python", str(bare), "--port", str(free_port())])
    assert run.wait(timeout=60) == 1
    assert "lacks the pack's requirements" in run.output
    assert f"-m pip install -r {REPO_ROOT / 'requirements.txt'}" in run.output
    assert "Traceback" not in run.output
    assert not (comfy / "record.json").exists()  # ComfyUI was never started


@pytest.mark.parametrize(("layout", "expected"), [
    ([], None),
    (["ComfyUI/venv/bin/python"], "ComfyUI/venv/bin/python"),
    (["ComfyUI/.venv/bin/python"], "ComfyUI/.venv/bin/python"),
    (["venv/bin/python"], "venv/bin/python"),  # beside the ComfyUI folder
    ([".venv/Scripts/python.exe"], ".venv/Scripts/python.exe"),
    (["ComfyUI/.venv/bin/python", "venv/bin/python"], "ComfyUI/.venv/bin/python"),
    (["python_embeded/python.exe", "ComfyUI/venv/bin/python"], "python_embeded/python.exe"),
])
def test_finds_comfyuis_own_python(tmp_path, layout, expected):
    make_fake_comfyui(tmp_path / "ComfyUI", install_pack=False)
    for rel in layout:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    python, how = LAUNCHER.find_python(tmp_path / "ComfyUI")
    assert python == (str(tmp_path / expected) if expected else sys.executable)
    assert how


def test_portable_root_folder_is_accepted(tmp_path):
    make_fake_comfyui(tmp_path / "ComfyUI_windows_portable" / "ComfyUI", install_pack=False)
    found = LAUNCHER.find_comfyui(tmp_path / "ComfyUI_windows_portable")
    assert found == tmp_path / "ComfyUI_windows_portable" / "ComfyUI"


def test_cache_follows_comfyuis_output_folder(tmp_path):
    comfy = tmp_path / "ComfyUI"
    assert LAUNCHER.comfyui_output_dir(comfy, []) == comfy / "output"
    assert LAUNCHER.comfyui_output_dir(comfy, ["--base-directory", str(tmp_path / "b")]) \
        == tmp_path / "b" / "output"
    assert LAUNCHER.comfyui_output_dir(
        comfy, ["--base-directory", "x", f"--output-directory={tmp_path / 'o'}"]) \
        == tmp_path / "o"


def test_standalone_double_still_works():
    port = free_port()
    run = Launcher(["--port", str(port), "--key", "offline", "--job-seconds", "0.1"])
    try:
        line = run.wait_for("RUNWARE_API_URL=")
        api_url = line.split("=", 1)[1].strip()
        assert api_url == f"http://127.0.0.1:{port}/v1"
        assert ping(api_url, "offline")[0] == 200
        assert run.interrupt() == 0
        assert _gone(port)
    finally:
        run.kill()


def test_version_comes_from_pyproject():
    import tomllib

    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = subprocess.run([sys.executable, str(REPO_ROOT / "offline_runware.py"), "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == version
    assert LAUNCHER.pack_version() == version


# -- a real ComfyUI ---------------------------------------------------------------------


def _real_comfyui() -> tuple[Path, str]:
    root = os.environ.get("COMFYUI_PATH")
    if not root:
        pytest.skip("optional: set COMFYUI_PATH (and COMFYUI_PYTHON unless ComfyUI's own "
                    "Python is beside it) to start a real ComfyUI with the launcher")
    comfy = LAUNCHER.find_comfyui(root)
    python = os.environ.get("COMFYUI_PYTHON") or LAUNCHER.find_python(comfy)[0]
    probe = subprocess.run(
        [python, "-c", "import torch, av, aiohttp, jsonschema, comfyui_frontend_package"],
        capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot run ComfyUI with this pack: "
                    f"{probe.stderr.strip().splitlines()[-1:]}")
    return comfy, python


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.load(reply)


def test_real_comfyui_runs_an_example_workflow_for_free():
    comfy, python = _real_comfyui()
    from test_e2e_comfyui import to_api_prompt  # the UI -> API converter of the e2e test

    work = Path(tempfile.mkdtemp(prefix="runware-launcher-"))
    folder = "ComfyUI-Runware-Ovi-Sync3"
    base = work / "base"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / folder).symlink_to(REPO_ROOT, target_is_directory=True)
    (work / "user" / "default").mkdir(parents=True)
    port = free_port()
    run = Launcher([
        "--comfyui", str(comfy), "--python", python, "--port", str(port),
        "--job-seconds", "0.3", "--",
        "--cpu", "--base-directory", str(base), "--output-directory", str(work / "output"),
        "--user-directory", str(work / "user"), "--temp-directory", str(work / "temp"),
        "--input-directory", str(work / "input"),
        "--database-url", f"sqlite:///{work / 'user' / 'comfyui.db'}",
        "--disable-all-custom-nodes", "--whitelist-custom-nodes", folder,
        "--disable-auto-launch",
    ])
    try:
        run.wait_for("ComfyUI is ready:", timeout=300)
        page = f"http://127.0.0.1:{port}"
        info = _get(f"{page}/object_info")
        assert "RunwareOvi" in info and "RunwareSync3" in info
        workflow = json.loads((REPO_ROOT / "example_workflows/ovi_text_to_video.json")
                              .read_text(encoding="utf-8"))
        body = json.dumps({"prompt": to_api_prompt(workflow, info),
                           "client_id": str(uuid.uuid4())}).encode()
        request = urllib.request.Request(f"{page}/prompt", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            prompt_id = json.load(reply)["prompt_id"]
        deadline = time.monotonic() + 180
        entry = None
        while time.monotonic() < deadline:
            entry = _get(f"{page}/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                break
            time.sleep(0.3)
        assert entry and entry["status"]["status_str"] == "success", entry
        # The result came from the double into the launcher's own cache folder.
        assert list((work / "output" / "runware_offline").rglob("*.mp4"))
        assert run.interrupt(timeout=60) == 0
        assert _gone(port)
    finally:
        run.kill()
        shutil.rmtree(work, ignore_errors=True)
