"""The README's Quick start, run as written on a fresh checkout.

A copy of the tracked files goes where the README's clone puts it,
``ComfyUI/custom_nodes/ComfyUI-Runware-Ovi-Sync3`` (a fake ComfyUI, see fake_comfyui.py),
and the two commands run from ``custom_nodes`` with this Python as ``python``. Two changes,
both appended to the lines as written, keep the test off the network and off busy ports:
the install gets ``--dry-run --no-index`` (pip resolves the requirements against this
Python, which has them, and would fail rather than download), and the launcher gets
``--port`` with a free port (the last ``--port`` wins).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
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
from test_layout import readme_commands

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX shell and signals")


def test_readme_quick_start_is_a_clone_then_exactly_two_commands():
    clone = readme_commands("Quick start")
    assert clone[-1].startswith("git clone https://github.com/")
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```bash\n")[1:]
    assert len(blocks) == 2
    commands = [line for line in blocks[1].split("```")[0].splitlines() if line.strip()]
    assert len(commands) == 2
    assert "pip install -r" in commands[0] and "offline_runware.py --comfyui" in commands[1]
    # The next section tells the user how to use a real key.
    assert text.index("\n## Quick start") < text.index("\n## Use your Runware key")
    assert text.split("\n## ")[1].startswith("Quick start")


def _fresh_checkout(custom_nodes: Path, folder: str) -> Path:
    """What `git clone` leaves: the tracked files, in a folder named by the clone URL."""
    out = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    dest = custom_nodes / folder
    for name in out.stdout.split():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, dest / name)
    return dest


def test_quick_start_works_as_written_on_a_fresh_checkout(tmp_path):
    clone_line = readme_commands("Quick start")[-1]
    folder = clone_line.rstrip("/").rsplit("/", 1)[1]
    assert folder == "ComfyUI-Runware-Ovi-Sync3" and not folder.isidentifier()
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Quick start", 1)[1].split("\n## ", 1)[0]
    install, launch = [line.strip() for line in
                       section.split("```bash\n")[2].split("```")[0].splitlines()
                       if line.strip()]

    comfy = make_fake_comfyui(tmp_path / "ComfyUI", install_pack=False)
    checkout = _fresh_checkout(comfy / "custom_nodes", folder)
    # `python` on PATH is this interpreter (ComfyUI's Python, for the test): its venv's bin.
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "python").exists():
        pytest.skip("this Python has no `python` beside it (not a venv)")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    cwd = comfy / "custom_nodes"

    installed = subprocess.run(shlex.split(install) + ["--dry-run", "--no-index"], cwd=cwd,
                               env=env, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "requirements.txt" in installed.stdout  # it read the checkout's requirements

    port = free_port()
    run = Launcher([], cwd=cwd, env=env,
                   command=shlex.split(launch) + ["--port", str(port)])
    try:
        ready = run.wait_for("ComfyUI is ready:")
        assert ready.endswith(f"http://127.0.0.1:{port}/")
        assert "is not in" not in run.output  # the launcher sees the pack installed
        seen = wait_for_record(comfy)
        assert Path(seen["cwd"]) == comfy
        assert ping(seen["env"]["RUNWARE_API_URL"], seen["env"]["RUNWARE_API_KEY"])[0] == 200
        # The double runs from the fresh checkout, not from this repo.
        assert str(checkout / "offline_runware.py") in " ".join(
            " ".join(p.cmdline()) for p in psutil.Process(run.proc.pid).children())
        assert run.interrupt() == 0
        assert not port_open(port)
    finally:
        run.kill()
