"""Optional end-to-end test: the pack inside a real ComfyUI, against the offline double.

Skipped unless both are set:

- ``COMFYUI_PATH``: a ComfyUI checkout (``main.py``), e.g. v0.3.64;
- ``COMFYUI_PYTHON``: a Python that runs it (torch, torchvision, torchaudio, ComfyUI's
  requirements and the pack's requirements installed).

Optional: ``COMFYUI_FRONTEND_ROOT``, a frontend to serve instead of the one ComfyUI pins
(passed as ``--front-end-root``), e.g. the ``static/`` folder of an unpacked
``comfyui-frontend-package`` wheel such as 1.58.1.

The browser part also needs Chromium (``CHROMIUM_PATH``, default ``/usr/bin/chromium``)
and the Python ``playwright`` package in this Python or in ``COMFYUI_PYTHON`` (no browser
download: Playwright drives the system Chromium). It runs in both node renderers (the
classic canvas and "Nodes 2.0", setting ``Comfy.VueNodes.Enabled``) where the frontend has
both: every example loads without console errors; a word selected in RunwareOvi's prompt
and wrapped with each button is what the page queues; the tag warning is visible; a new
RunwareOvi starts with its seed on "fixed".

What happens: the double (``offline_runware.py``) and ComfyUI start as subprocesses on free
ports, with every ComfyUI directory in a temp dir and a ``custom_nodes`` folder holding only
a symlink to this repo (under a folder name that is not the repo's). Then: the import log,
``/object_info``, ``/extensions``, every example workflow queued through ``/prompt``, an
unchanged re-queue and a ComfyUI restart that must not submit anything, and (with a browser)
every example workflow loaded in the real page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import av
import pytest
from media_factory import png_bytes, write_mp4, write_wav

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
FOLDER = "ComfyUI-Runware-Ovi-Sync3"  # the custom_nodes folder name users get from git clone
API_KEY = "offline-e2e-key"
OUR_NODES = (
    "RunwareOvi", "RunwareSync3", "RunwareSync3Segment", "RunwareSync3Speaker",
    "RunwareSync3TTS", "RunwareOviPrompt", "RunwareAccelerator", "RunwareDelivery",
    "RunwareFetchResult", "RunwareVideoFrames",
)
NOTE_TYPES = {"MarkdownNote", "Note"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
FRONTEND_ROOT = os.environ.get("COMFYUI_FRONTEND_ROOT", "")
RUN_TIMEOUT = 120.0


def _comfyui() -> tuple[Path, str]:
    root, python = os.environ.get("COMFYUI_PATH"), os.environ.get("COMFYUI_PYTHON")
    if not root or not python:
        pytest.skip("optional e2e test: set COMFYUI_PATH (a ComfyUI checkout) and "
                    "COMFYUI_PYTHON (a Python that runs it)")
    if not (Path(root) / "main.py").is_file():
        pytest.skip(f"COMFYUI_PATH={root} has no main.py")
    probe = subprocess.run(
        [python, "-c", "import torch, torchvision, torchaudio, av, aiohttp, jsonschema, "
                       "comfyui_frontend_package"],
        capture_output=True, text=True, timeout=300,
    ) if shutil.which(python) or Path(python).is_file() else None
    if probe is None or probe.returncode != 0:
        detail = probe.stderr.strip().splitlines()[-1:] if probe else ["not found"]
        pytest.skip(f"COMFYUI_PYTHON={python} cannot run ComfyUI: {detail}")
    return Path(root).resolve(), python


def _frontend_args() -> list[str]:
    """--front-end-root when COMFYUI_FRONTEND_ROOT names a built frontend (index.html)."""
    if not FRONTEND_ROOT:
        return []
    root = Path(FRONTEND_ROOT).expanduser().resolve()
    if not (root / "index.html").is_file():
        pytest.fail(f"COMFYUI_FRONTEND_ROOT={FRONTEND_ROOT} has no index.html (point it at the "
                    "static/ folder of an unpacked comfyui-frontend-package wheel)")
    return ["--front-end-root", str(root)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Stack:
    """The offline double plus a ComfyUI with only this pack, in one temp dir."""

    def __init__(self, root: Path, python: str, work: Path) -> None:
        self.root, self.python, self.work = root, python, work
        self.double: subprocess.Popen | None = None
        self.extra: list[subprocess.Popen] = []
        self.comfy: subprocess.Popen | None = None
        self.double_log = work / "double.log"
        self.comfy_log = work / "comfyui.log"
        self.api_url = ""
        self.base = ""
        for sub in ("base/custom_nodes", "input", "output", "user/default", "temp"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        (work / "base/custom_nodes" / FOLDER).symlink_to(REPO_ROOT, target_is_directory=True)
        # An existing user: no first-run template browser over the page.
        (work / "user/default/comfy.settings.json").write_text(
            json.dumps({"Comfy.TutorialCompleted": True}))
        self._write_inputs(work / "input")

    @staticmethod
    def _write_inputs(folder: Path) -> None:
        """What the example workflows' Load nodes name (a 6 s clip: segments go to 5 s)."""
        (folder / "example.png").write_bytes(png_bytes(320, 240))
        write_mp4(folder / "example.mp4", width=320, height=240, fps=24, frames=144)
        write_wav(folder / "example.wav", seconds=3.0, rate=44100, channels=2)
        write_wav(folder / "example_2.wav", seconds=3.0, rate=22050, channels=1)

    def start_double(self) -> None:
        self.double, self.api_url = self.launch_double(self.double_log, self.work / "double",
                                                       job_seconds=0.3)

    def launch_double(self, log_path: Path, storage: Path, *, job_seconds: float
                      ) -> tuple[subprocess.Popen, str]:
        """An offline double (its process and RUNWARE_API_URL); stopped by stop()."""
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [self.python, str(REPO_ROOT / "offline_runware.py"), "--port", "0",
                 "--key", API_KEY, "--job-seconds", str(job_seconds), "--log-level",
                 "DEBUG", "--storage", str(storage)],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.work,
            )
        self.extra.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in log_path.read_text(errors="replace").splitlines():
                if line.strip().startswith("RUNWARE_API_URL="):
                    return proc, line.strip().split("=", 1)[1]
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"the offline double did not start:\n{_tail(log_path)}")

    def start_comfyui(self) -> None:
        port = _free_port()
        w = self.work
        env = {**os.environ, "RUNWARE_API_URL": self.api_url, "RUNWARE_API_KEY": API_KEY,
               "PYTHONUNBUFFERED": "1"}
        env.pop("RUNWARE_DAILY_LIMIT_USD", None)
        for name in ("RUNWARE_CACHE_DIR", "RUNWARE_OUTPUT_DIR", "RUNWARE_USER_DIR",
                     "RUNWARE_TEMP_DIR"):
            env.pop(name, None)
        with open(self.comfy_log, "a") as log:
            log.write(f"\n===== ComfyUI start on port {port} =====\n")
            log.flush()
            self.comfy = subprocess.Popen(
                [self.python, "-B", "main.py", "--cpu", "--listen", "127.0.0.1",
                 "--port", str(port), "--base-directory", str(w / "base"),
                 "--output-directory", str(w / "output"), "--input-directory", str(w / "input"),
                 "--user-directory", str(w / "user"), "--temp-directory", str(w / "temp"),
                 "--database-url", f"sqlite:///{w / 'user' / 'comfyui.db'}",
                 "--disable-all-custom-nodes", "--whitelist-custom-nodes", FOLDER,
                 "--disable-auto-launch", *_frontend_args()],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=env,
            )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.comfy.poll() is not None:
                break
            try:
                self.get("/system_stats")
                return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"ComfyUI did not start:\n{_tail(self.comfy_log)}")

    def restart_comfyui(self) -> None:
        _stop(self.comfy)
        self.start_comfyui()

    def stop(self) -> None:
        _stop(self.comfy)
        for proc in self.extra:
            _stop(proc)

    # -- HTTP

    def get(self, path: str) -> dict | list:
        with urllib.request.urlopen(self.base + path, timeout=30) as reply:
            return json.load(reply)

    def queue(self, prompt: dict) -> str:
        body = json.dumps({"prompt": prompt, "client_id": str(uuid.uuid4())}).encode()
        request = urllib.request.Request(self.base + "/prompt", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return json.load(reply)["prompt_id"]
        except urllib.error.HTTPError as exc:
            pytest.fail(f"POST /prompt refused ({exc.code}): {exc.read().decode()[:3000]}")

    def wait(self, prompt_id: str) -> dict:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.3)
        pytest.fail(f"prompt {prompt_id} did not finish in {RUN_TIMEOUT:.0f} s:\n"
                    f"{_tail(self.comfy_log)}")

    def run(self, prompt: dict) -> dict:
        return self.wait(self.queue(prompt))

    # -- the double's log

    def submissions(self) -> int:
        """videoInference tasks the double accepted (its DEBUG log line per job)."""
        text = self.double_log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if "double: accepted " in line)

    def api_requests(self) -> int:
        text = self.double_log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if '"POST /v1' in line)


@pytest.fixture(scope="module")
def stack():
    root, python = _comfyui()
    work = Path(tempfile.mkdtemp(prefix="runware-e2e-"))
    s = Stack(root, python, work)
    try:
        s.start_double()
        s.start_comfyui()
        yield s
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def object_info(stack) -> dict:
    return stack.get("/object_info")


# -- UI-format workflow -> API-format prompt ------------------------------------------------


def _widget_inputs(info: dict) -> list[tuple[str, int]]:
    """(input name, extra saved values after it) per widget, in the page's order."""
    spec, order = info.get("input", {}), info.get("input_order") or {}
    found = []
    for section in ("required", "optional"):
        names = order.get(section) or list((spec.get(section) or {}).keys())
        for name in names:
            entry = (spec.get(section) or {}).get(name)
            if entry is None:
                continue
            kind = "COMBO" if isinstance(entry[0], list) else entry[0]
            opts = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            if kind not in WIDGET_TYPES or opts.get("forceInput"):
                continue
            control = opts.get("control_after_generate")
            extra = 0
            if kind == "INT" and (control or (control is None and name in ("seed",
                                                                          "noise_seed"))):
                extra = 1  # the "control after generate" value
            elif kind == "COMBO" and control:
                extra = 2  # control value + filter string
            found.append((name, extra))
    return found


def to_api_prompt(workflow: dict, object_info: dict) -> dict:
    """UI format (positional widgets_values + links) -> what POST /prompt takes.

    Widgets the page adds after every input (upload buttons, LoadAudio's player) come last
    in widgets_values, so reading the inputs' values from the front is enough.
    """
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt: dict[str, dict] = {}
    for node in workflow["nodes"]:
        if node["type"] in NOTE_TYPES or node.get("mode", 0) in (2, 4):
            continue
        assert node["type"] in object_info, f"{node['type']} is not in /object_info"
        values = node.get("widgets_values") or []
        inputs: dict = {}
        index = 0
        for name, extra in _widget_inputs(object_info[node["type"]]):
            if index >= len(values):
                break
            inputs[name] = values[index]
            index += 1 + extra
        for slot in node.get("inputs") or []:
            if slot.get("link") is not None:
                link = links[slot["link"]]
                inputs[slot["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _errors(entry: dict) -> list[str]:
    return [
        f"{m[1].get('node_type')} (node {m[1].get('node_id')}): {m[1].get('exception_type')}: "
        f"{m[1].get('exception_message')}"
        for m in entry["status"].get("messages", []) if m[0] == "execution_error"
    ]


def _cached_nodes(entry: dict) -> set[str]:
    return {n for m in entry["status"].get("messages", []) if m[0] == "execution_cached"
            for n in m[1].get("nodes", [])}


def _saved_videos(stack: Stack, entry: dict, node_type: str = "SaveVideo") -> list[Path]:
    prompt = entry["prompt"][2]
    files = []
    for node_id, out in entry["outputs"].items():
        if prompt[node_id]["class_type"] != node_type:
            continue
        for item in out.get("images", []):
            files.append(stack.work / item["type"] / item["subfolder"] / item["filename"])
    return files


def _duration(path: Path) -> float:
    with av.open(str(path)) as container:
        return container.duration / av.time_base


# -- the server side --------------------------------------------------------------------------


def test_pack_imports_without_errors(stack):
    log = stack.comfy_log.read_text(errors="replace")
    assert "IMPORT FAILED" not in log, _tail(stack.comfy_log)
    failed = [line for line in log.splitlines() if "Cannot import" in line and FOLDER in line]
    assert failed == [], _tail(stack.comfy_log)
    assert f"custom_nodes/{FOLDER}" in log, "the pack is not in ComfyUI's import times"


def test_object_info_lists_every_node(object_info, pack):
    assert sorted(pack.NODE_CLASS_MAPPINGS) == sorted(OUR_NODES)
    for node_id in OUR_NODES:
        info = object_info.get(node_id)
        assert info is not None, f"{node_id} missing from /object_info"
        assert info["category"] == "Runware"
        assert info["python_module"] == f"custom_nodes.{FOLDER}"
        assert info["display_name"] == pack.NODE_DISPLAY_NAME_MAPPINGS[node_id]
        assert info["description"]
    ovi = object_info["RunwareOvi"]
    assert ovi["input"]["required"]["seed"][1]["control_after_generate"] is True
    assert ovi["input"]["required"]["prompt"][1]["multiline"] is True
    assert ovi["input"]["hidden"] == {"unique_id": "UNIQUE_ID", "graph": "PROMPT"}
    for node_id in ("RunwareOvi", "RunwareSync3", "RunwareFetchResult"):
        info = object_info[node_id]
        assert info["output"] == ["VIDEO", "IMAGE", "AUDIO", "FLOAT", "STRING"]
        assert info["output_name"] == ["video", "images", "audio", "fps", "info"]
        assert info["output_is_list"] == [True] * 5
    assert object_info["RunwareSync3"]["input"]["optional"]["video"][0] == "VIDEO"
    # every typed input of ours is produced by one of our nodes (or is a core type)
    produced = {t for n in OUR_NODES for t in object_info[n]["output"]}
    for node_id in OUR_NODES:
        for section in ("required", "optional"):
            for name, spec in (object_info[node_id]["input"].get(section) or {}).items():
                kind = spec[0]
                if isinstance(kind, str) and kind.startswith("RUNWARE_"):
                    assert kind in produced, f"{node_id}.{name}: nothing outputs {kind}"


def test_web_extension_is_served(stack):
    scripts = [s for s in stack.get("/extensions") if f"/extensions/{FOLDER}/" in s]
    assert f"/extensions/{FOLDER}/js/runware.js" in scripts
    for script in scripts:
        with urllib.request.urlopen(stack.base + script, timeout=30) as reply:
            assert reply.status == 200
            assert reply.read().strip()


def test_example_workflows_are_templates(stack):
    templates = stack.get("/api/workflow_templates")
    assert sorted(templates.get(FOLDER, [])) == sorted(p.stem for p in WORKFLOWS)


def test_queue_twice_and_after_restart_pays_once(stack, object_info):
    """ovi_to_sync3 (two paid jobs): one run, then an unchanged re-queue and a ComfyUI
    restart, neither of which may submit anything."""
    prompt = to_api_prompt(_load(REPO_ROOT / "example_workflows/ovi_to_sync3.json"),
                           object_info)
    ours = {i for i, n in prompt.items() if n["class_type"] in ("RunwareOvi", "RunwareSync3")}
    before = stack.submissions()
    first = stack.run(prompt)
    assert first["status"]["status_str"] == "success", _errors(first)
    assert stack.submissions() - before == 2  # one Ovi job, one sync-3 job
    videos = _saved_videos(stack, first)
    assert len(videos) == 2
    for video in videos:
        assert video.is_file() and video.stat().st_size > 0
        assert abs(_duration(video) - 5.0) < 0.25, f"{video.name}: {_duration(video)} s"

    requests = stack.api_requests()
    second = stack.run(prompt)
    assert second["status"]["status_str"] == "success", _errors(second)
    assert ours <= _cached_nodes(second), "ComfyUI re-executed a paid node"
    assert stack.api_requests() == requests, "an unchanged re-queue talked to Runware"

    stack.restart_comfyui()
    third = stack.run(prompt)
    assert third["status"]["status_str"] == "success", _errors(third)
    assert stack.submissions() - before == 2, "a restart made the same request pay again"
    assert stack.api_requests() == requests
    assert "Reusing the cached result" in stack.comfy_log.read_text(errors="replace")


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_example_workflow_runs(stack, object_info, path):
    entry = stack.run(to_api_prompt(_load(path), object_info))
    assert entry["status"]["status_str"] == "success", "\n".join(_errors(entry))
    saved = [f for node_type in ("SaveVideo", "SaveAudio")
             for f in _saved_videos(stack, entry, node_type)]
    assert saved, "the workflow saved nothing"
    for f in saved:
        assert f.is_file() and f.stat().st_size > 0, f


# -- the page -----------------------------------------------------------------------------

PAGE_SCRIPT = r"""
import json, sys, tempfile
from playwright.sync_api import sync_playwright

base, chromium, folder, shots, key = sys.argv[1:6]
workflows = json.loads(sys.stdin.read())
args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOAD = '''async (wf) => {
  await window.app.loadGraphData(wf, true, true, 'e2e');
  await new Promise(r => setTimeout(r, 300));
  const known = new Set(Object.keys(LiteGraph.registered_node_types));
  const out = {missing: [], mismatches: []};
  for (const saved of wf.nodes) {
    const node = window.app.graph.getNodeById(saved.id);
    if (!node || !known.has(saved.type) || node.has_errors) {
      out.missing.push(saved.id + ':' + saved.type); continue;
    }
    let got = node.serialize().widgets_values ?? [];
    let want = saved.widgets_values ?? [];
    if (!saved.type.startsWith('Runware')) {
      // Core nodes' trailing UI widgets differ between frontends (1.58 saves LoadAudio
      // with one value less than 1.27): compare what both have.
      const n = Math.min(got.length, want.length);
      got = got.slice(0, n); want = want.slice(0, n);
    }
    if (JSON.stringify(got) !== JSON.stringify(want))
      out.mismatches.push({id: saved.id, type: saved.type, want, got});
  }
  out.dialogs = [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 300));
  return out;
}'''
result = {"startup": [], "bad_responses": [], "workflows": {}}
with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
    ctx = pw.chromium.launch_persistent_context(profile, executable_path=chromium,
                                                headless=True, args=args)
    page = ctx.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("response", lambda r: result["bad_responses"].append(f"{r.status} {r.url}")
            if r.status >= 400 and (folder in r.url or "runware" in r.url.lower()) else None)
    page.goto(base, wait_until="load")
    page.wait_for_function("() => window.app && window.app.graph && window.app.extensions"
                           " && window.app.extensions.some(e => e.name.startsWith('runware'))",
                           timeout=90000)
    page.wait_for_timeout(1500)
    result["startup"] = list(errors)
    result["extensions"] = page.evaluate("() => window.app.extensions.map(e => e.name)")
    result["new_ovi_control"] = page.evaluate('''() => {
        const n = LiteGraph.createNode('RunwareOvi'); window.app.graph.add(n);
        const w = n.widgets.find(w => w.name === 'control_after_generate');
        const v = w && w.value; window.app.graph.remove(n); return v; }''')
    for name, wf in workflows.items():
        errors.clear()
        res = page.evaluate(LOAD, wf)
        res["console"] = list(errors)
        result["workflows"][name] = res
        page.screenshot(path=f"{shots}/page-{name}.png")
    # The key setting: Settings -> Runware -> API key, saved through the pack's routes.
    errors.clear()
    page.evaluate("() => app.extensionManager.command.execute('Comfy.ShowSettingsDialog')")
    page.get_by_text("Runware", exact=True).first.click()
    page.wait_for_selector(".runware-key-setting input", timeout=20000)
    setting = page.locator(".runware-key-setting")
    setting.locator("input").fill(key)
    setting.get_by_role("button", name="Save").click()
    page.wait_for_function("() => !document.querySelector('.runware-key-setting "
                           "[role=status]').textContent.includes('Checking')", timeout=60000)
    page.screenshot(path=f"{shots}/settings.png")
    result["setting"] = {
        "status": setting.inner_text(),
        "input_after": setting.locator("input").input_value(),
        "storage": page.evaluate("() => JSON.stringify(Object.assign({}, localStorage))"
                                 " + JSON.stringify(Object.assign({}, sessionStorage))"),
        "value": page.evaluate("() => app.extensionManager.setting.get('Runware.ApiKey')"),
        "console": [e for e in errors if folder in e or "runware" in e.lower()],
    }
    ctx.close()
print(json.dumps(result))
"""


def _python_with_playwright(candidates: list[str]) -> str | None:
    for python in candidates:
        ok = subprocess.run([python, "-c", "import playwright.sync_api"],
                            capture_output=True, timeout=120)
        if ok.returncode == 0:
            return python
    return None


# Page noise that is not ours: ComfyUI's first-start 404s (user.css, unset settings),
# no internet (api.comfy.org), and frontend 1.27's own settings bug at startup.
def _ours(message: str) -> bool:
    return FOLDER in message or "runware" in message.lower()


def test_example_workflows_load_in_the_page(stack):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (set CHROMIUM_PATH)")
    python = _python_with_playwright([sys.executable, stack.python])
    if python is None:
        pytest.skip("the Python playwright package is in neither this Python nor COMFYUI_PYTHON")
    workflows = {p.stem: _load(p) for p in WORKFLOWS}
    # Screenshots of each loaded workflow: kept in E2E_SCREENSHOT_DIR if set.
    shots = Path(os.environ.get("E2E_SCREENSHOT_DIR") or stack.work / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [python, "-c", PAGE_SCRIPT, stack.base, CHROMIUM, FOLDER, str(shots), API_KEY],
        input=json.dumps(workflows), capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "runware.ovi_sync3" in result["extensions"]
    assert [e for e in result["startup"] if _ours(e)] == []
    assert result["bad_responses"] == []
    assert result["new_ovi_control"] == "fixed"
    problems = {
        name: {k: v for k, v in res.items() if v}
        for name, res in result["workflows"].items()
        if res["missing"] or res["mismatches"] or res["dialogs"] or res["console"]
    }
    assert problems == {}, json.dumps(problems, indent=1)[:4000]
    # The setting saved the key: into the private key file only.
    setting = result["setting"]
    assert setting["input_after"] == "" and setting["console"] == []
    assert API_KEY not in setting["status"] and API_KEY[-4:] in setting["status"]
    assert API_KEY not in setting["storage"] and not setting["value"]
    key_file = stack.work / "user" / "runware_api_key"
    assert key_file.read_text().strip() == API_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert API_KEY not in json.dumps(stack.get("/api/settings"))
    status = stack.get("/api/runware_ovi_sync3/key")
    assert status["configured"] and API_KEY not in json.dumps(status)


# -- both node renderers: wrap buttons, tag warning, seed control, examples --------------------

RENDERER_SCRIPT = r"""
import json, sys, tempfile
from playwright.sync_api import sync_playwright

base, chromium, folder, shots = sys.argv[1:5]
payload = json.loads(sys.stdin.read())
workflows, ovi_workflow = payload["workflows"], payload["ovi_workflow"]
args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TEXT = "A man says hello there and a dog barks loudly."

# The textarea a person sees for RunwareOvi's prompt: Nodes 2.0 draws one per node row; the
# classic canvas shows the widget's own DOM element over the canvas.
FIND = '''(id) => {
  const node = app.graph.getNodeById(id);
  const vue = document.querySelector(`[data-node-id="${id}"] [data-widget-name="prompt"] textarea`)
    || document.querySelector(`[data-node-id="${id}"] textarea[placeholder="prompt"]`);
  const w = node.widgets.find(w => w.name === 'prompt');
  const el = vue || w.element;
  document.querySelectorAll('textarea[data-e2e]').forEach(t => t.removeAttribute('data-e2e'));
  el.setAttribute('data-e2e', 'prompt');
  return {vue: !!vue};
}'''
CENTER = '''(id) => {
  const node = app.graph.getNodeById(id);
  const ds = app.canvas.ds;
  ds.scale = 1;
  ds.offset[0] = 40 - node.pos[0];
  ds.offset[1] = 80 - node.pos[1];
  app.canvas.setDirty(true, true);
  app.canvas.draw?.(true, true);
}'''
# Where a canvas-drawn button widget is, in page coordinates (the classic renderer).
BUTTON_XY = '''([id, label]) => {
  const node = app.graph.getNodeById(id);
  const w = node.widgets.find(w => w.type === 'button' && (w.label ?? w.name) === label
                              || w.name === label);
  const y = w.last_y ?? w.y;
  const h = w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT ?? 20;
  const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] / 2,
                                                        node.pos[1] + y + h / 2]);
  const r = app.canvas.canvas.getBoundingClientRect();
  const dpr = app.canvas.canvas.width / r.width || 1;
  return [r.left + cx / dpr, r.top + cy / dpr];
}'''
LINE = '''(id) => {
  const node = app.graph.getNodeById(id);
  const w = node.widgets.find(w => w.name === 'ovi_tag_check');
  const el = w?.element;
  if (!el) return {text: null, shown: false};
  const r = el.getBoundingClientRect();
  const inView = r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0
                 && r.top < innerHeight && r.left < innerWidth;
  const hit = inView ? document.elementFromPoint(r.left + Math.min(20, r.width / 2),
                                                 r.top + r.height / 2) : null;
  return {text: el.textContent, shown: el.isConnected && inView,
          onTop: !!hit && (hit === el || el.contains(hit))};
}'''
NEW_OVI = '''() => {
  const n = LiteGraph.createNode('RunwareOvi'); app.graph.add(n);
  const seed = n.widgets.find(w => w.name === 'seed');
  const control = (seed.linkedWidgets || []).find(w => w.options?.values?.includes('randomize'))
    || n.widgets.find(w => /control_(after|before)_generate/.test(w.name));
  const declared = LiteGraph.registered_node_types.RunwareOvi?.nodeData?.input?.required?.seed?.[1]
    ?.control_after_generate;
  const out = {value: control && control.value, name: control && control.name,
               declared: declared ?? null};
  app.graph.remove(n); return out;
}'''
LOAD = '''async (wf) => {
  await window.app.loadGraphData(wf, true, true, 'e2e');
  await new Promise(r => setTimeout(r, 500));
  const known = new Set(Object.keys(LiteGraph.registered_node_types));
  const missing = wf.nodes.filter(n => !known.has(n.type) || !app.graph.getNodeById(n.id)
                                     || app.graph.getNodeById(n.id).has_errors)
                          .map(n => n.id + ':' + n.type);
  const dialogs = [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 300));
  return {missing, dialogs, vue_nodes: document.querySelectorAll('[data-node-id]').length};
}'''

def run_mode(ctx, mode):
    page = ctx.new_page()
    errors, warnings, queued = [], [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else
            warnings.append(m.text) if m.type == "warning" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("request", lambda r: queued.append(r.post_data_json)
            if r.method == "POST" and r.url.rstrip("/").endswith("/prompt") else None)
    page.goto(base, wait_until="load")
    page.wait_for_function("() => window.app && window.app.graph && window.app.extensions"
                           " && window.app.extensions.some(e => e.name.startsWith('runware'))",
                           timeout=90000)
    page.evaluate("(on) => app.extensionManager.setting.set('Comfy.VueNodes.Enabled', on)",
                  mode == "vue")
    page.reload(wait_until="load")
    page.wait_for_function("() => window.app && window.app.graph && window.app.extensions"
                           " && window.app.extensions.some(e => e.name.startsWith('runware'))",
                           timeout=90000)
    page.wait_for_timeout(1500)
    out = {"mode": mode, "frontend": page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__"
                                                   " ?? null"),
           "setting": page.evaluate("() => app.extensionManager.setting.get("
                                    "'Comfy.VueNodes.Enabled') ?? null"),
           "startup": list(errors), "workflows": {}}
    for name, wf in workflows.items():
        errors.clear()
        res = page.evaluate(LOAD, wf)
        res["console"] = list(errors)
        out["workflows"][name] = res
    out["vue_active"] = any(r["vue_nodes"] for r in out["workflows"].values())
    version = [int(x) for x in (out["frontend"] or "0.0.0").split(".")[:2] if x.isdigit()]
    if mode == "vue" and not (out["vue_active"] and version >= [1, 30]):
        return out  # no Nodes 2.0 here, or only 1.27's unfinished experimental one
    errors.clear()
    out["new_ovi"] = page.evaluate(NEW_OVI)

    # RunwareOvi's prompt: type a text, select one word, press a wrap button.
    page.evaluate(LOAD, ovi_workflow)
    ovi_id = next(n["id"] for n in ovi_workflow["nodes"] if n["type"] == "RunwareOvi")
    page.evaluate(CENTER, ovi_id)
    page.wait_for_timeout(500)
    out["found"] = page.evaluate(FIND, ovi_id)
    box = page.locator("textarea[data-e2e=prompt]")
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(TEXT)
    page.wait_for_timeout(300)
    out["wraps"] = []
    for kind, words, label in (("speech", "hello", "Wrap selection as speech <S>\u2026<E>"),
                               ("sound", "a dog barks",
                                "Wrap selection as sound <AUDCAP>\u2026<ENDAUDCAP>")):
        page.evaluate(FIND, ovi_id)
        box.evaluate("(el, w) => { const i = el.value.indexOf(w); el.focus();"
                     " el.setSelectionRange(i, i + w.length); }", words)
        if out["found"]["vue"]:
            node_el = page.locator(f"[data-node-id=\"{ovi_id}\"]")
            button = node_el.get_by_role("button", name=label, exact=True)
            if not button.count():
                button = node_el.get_by_text(label, exact=True)
            button.first.click()
        else:
            x, y = page.evaluate(BUTTON_XY, [ovi_id, label])
            page.mouse.click(x, y)
        page.wait_for_timeout(400)
        page.evaluate(FIND, ovi_id)
        shown = box.input_value()
        queued.clear()
        page.evaluate("() => app.extensionManager.command.execute('Comfy.QueuePrompt')")
        page.wait_for_timeout(1500)
        sent = [q for q in queued if q and "prompt" in q]
        prompt_sent = sent[-1]["prompt"][str(ovi_id)]["inputs"]["prompt"] if sent else None
        out["wraps"].append({"kind": kind, "shown": shown, "queued": prompt_sent,
                             "widget": page.evaluate(
                                 "(id) => app.graph.getNodeById(id).widgets"
                                 ".find(w => w.name === 'prompt').value", ovi_id)})
        page.screenshot(path=f"{shots}/{mode}-wrap-{kind}.png")
    # An unbalanced tag typed by hand: the warning line must be on screen.
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("A man says <S>hello")
    page.wait_for_timeout(600)
    out["warning"] = page.evaluate(LINE, ovi_id)
    out["outline"] = box.evaluate("(el) => getComputedStyle(el).outlineStyle")
    page.screenshot(path=f"{shots}/{mode}-warning.png")
    out["console"] = list(errors)
    out["inputEl_warnings"] = [w for w in warnings if "inputEl" in w]
    page.close()
    return out

result = {}
with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
    ctx = pw.chromium.launch_persistent_context(profile, executable_path=chromium,
                                                headless=True, args=args,
                                                viewport={"width": 1600, "height": 1400})
    for mode in ("canvas", "vue"):
        result[mode] = run_mode(ctx, mode)
    ctx.close()
print(json.dumps(result))
"""

WRAPPED = {
    "speech": "A man says <S>hello<E> there and a dog barks loudly.",
    "sound": "A man says <S>hello<E> there and <AUDCAP>a dog barks<ENDAUDCAP> loudly.",
}


def test_both_renderers_wrap_what_the_user_sees(stack):
    """Nodes 2.0 (Vue) and the classic canvas: the word selected in the visible textarea is
    what gets wrapped and queued, the warning shows, new nodes start on "fixed", and every
    example loads without a console error."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (set CHROMIUM_PATH)")
    python = _python_with_playwright([sys.executable, stack.python])
    if python is None:
        pytest.skip("the Python playwright package is in neither this Python nor COMFYUI_PYTHON")
    shots = Path(os.environ.get("E2E_SCREENSHOT_DIR") or stack.work / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    payload = {"workflows": {p.stem: _load(p) for p in WORKFLOWS},
               "ovi_workflow": _load(REPO_ROOT / "example_workflows/ovi_text_to_video.json")}
    proc = subprocess.run(
        [python, "-c", RENDERER_SCRIPT, stack.base, CHROMIUM, FOLDER, str(shots)],
        input=json.dumps(payload), capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    (shots / "renderers.json").write_text(json.dumps(result, indent=1))
    tested = [mode for mode, res in result.items() if "wraps" in res]
    print(f"\nfrontend {result['canvas']['frontend'] or '(< 1.30: version not exposed)'}; "
          f"renderers checked: {', '.join(tested)}")
    assert "canvas" in tested
    version = [int(x) for x in (result["vue"]["frontend"] or "0.0").split(".")[:2]]
    if version >= [1, 50]:
        assert "vue" in tested, "Nodes 2.0 did not start with Comfy.VueNodes.Enabled"
    for mode, res in result.items():
        if mode not in tested:
            continue
        assert [e for e in res["startup"] if _ours(e)] == [], (mode, res["startup"])
        bad = {n: r for n, r in res["workflows"].items()
               if r["missing"] or r["dialogs"] or r["console"]}
        assert bad == {}, (mode, json.dumps(bad, indent=1)[:3000])
        assert res["found"]["vue"] == (mode == "vue"), res["found"]
        for wrap in res["wraps"]:
            want = WRAPPED[wrap["kind"]]
            assert wrap["shown"] == want, (mode, wrap)
            assert wrap["widget"] == want, (mode, wrap)
            assert wrap["queued"] == want, (mode, wrap)
        warning = res["warning"]
        assert warning["text"] and "never closed" in warning["text"], (mode, warning)
        assert warning["shown"] and warning["onTop"], (mode, warning)
        assert res["outline"] not in ("", "none"), (mode, res["outline"])
        assert res["new_ovi"]["value"] == "fixed", (mode, res["new_ovi"])
        # (A 1.5x page polls endpoints an older ComfyUI lacks, e.g. /api/jobs: not ours.)
        assert [e for e in res["console"] if _ours(e)] == [], (mode, res["console"])
        assert res["inputEl_warnings"] == [], (mode, res["inputEl_warnings"])


# -- the Runware panel: a sidebar tab over the ledger ------------------------------------------

PANEL_SCRIPT = r"""
import json, sys, tempfile, time, urllib.request
from playwright.sync_api import sync_playwright

base, chromium, shots, double_log = sys.argv[1:5]
prompts = json.loads(sys.stdin.read())
args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

def accepted():
    with open(double_log, errors="replace") as fh:
        return sum(1 for line in fh if "double: accepted " in line)

def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as reply:
        return reply.read()

def queue(prompt):
    return json.loads(post("/prompt", {"prompt": prompt, "client_id": "e2e-panel"}))["prompt_id"]

OPEN = '''async () => {
  const panel = () => document.querySelector('[data-runware-panel]');
  const shown = () => !!(panel() && panel().offsetParent);
  if (!shown()) {
    const icon = document.querySelector('.side-bar-button .pi-wallet, button .pi-wallet');
    if (icon) icon.closest('button').click();
    else await app.extensionManager.command.execute('Workspace.ToggleSidebarTab.runware-jobs');
  }
  for (let i = 0; i < 100 && !shown(); i++) await new Promise(r => setTimeout(r, 100));
  return {shown: shown(), icon: !!document.querySelector('.pi-wallet'),
          api: typeof app.extensionManager?.registerSidebarTab === 'function'};
}'''
CARD = '''(task) => {
  const card = document.querySelector(`[data-runware-panel] [data-task-uuid="${task}"]`);
  if (!card) return null;
  return {text: card.innerText, badge: card.querySelector('.rw-badge')?.textContent,
          recover: [...card.querySelectorAll('button')].some(b => b.textContent === 'Recover'),
          video: card.querySelector('video')?.getAttribute('src') ?? null};
}'''
CARDS = '''() => [...document.querySelectorAll('[data-runware-panel] [data-task-uuid]')]
  .map(c => ({task: c.getAttribute('data-task-uuid'), text: c.innerText,
              badge: c.querySelector('.rw-badge')?.textContent}))'''
LIVE = '''() => [...document.querySelectorAll('[data-runware-panel] [data-live-id]')]
  .map(c => c.innerText)'''
PANEL_TEXT = '''() => document.querySelector('[data-runware-panel]')?.innerText ?? null'''

def wait(page, fn, arg=None, timeout=60.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(fn, arg) if arg is not None else page.evaluate(fn)
        if value:
            return value
        page.wait_for_timeout(150)
    raise SystemExit(f"timed out waiting for {what}: {page.evaluate(PANEL_TEXT)}")

def card_with(page, predicate, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for card in page.evaluate(CARDS):
            if predicate(card):
                return card
        page.wait_for_timeout(150)
    raise SystemExit(f"timed out waiting for {what}: {page.evaluate(PANEL_TEXT)}")

def start(page, errors, mode):
    page.goto(base, wait_until="load")
    page.wait_for_function("() => window.app && window.app.graph && window.app.extensions"
                           " && window.app.extensions.some(e => e.name === 'runware.panel')",
                           timeout=90000)
    page.evaluate("(on) => app.extensionManager.setting.set('Comfy.VueNodes.Enabled', on)",
                  mode == "vue")
    page.reload(wait_until="load")
    page.wait_for_function("() => window.app && window.app.graph && window.app.extensions"
                           " && window.app.extensions.some(e => e.name === 'runware.panel')",
                           timeout=90000)
    page.wait_for_timeout(1500)
    errors.clear()
    return page.evaluate(OPEN)

out = {"modes": {}}
with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
    ctx = pw.chromium.launch_persistent_context(profile, executable_path=chromium,
                                                headless=True, args=args,
                                                viewport={"width": 1500, "height": 1300})
    page = ctx.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    res = {"open": start(page, errors, "canvas")}
    out["modes"]["canvas"] = res
    out["frontend"] = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? null")
    if not res["open"]["shown"]:
        out["panel_text"] = page.evaluate(PANEL_TEXT)
        print(json.dumps(out))
        sys.exit(0)
    wait(page, "() => document.querySelector('[data-runware-panel] .rw-page')?.textContent",
         what="the first page of jobs")
    res["empty_text"] = page.evaluate(PANEL_TEXT)

    # 1. A job runs: live in the panel (model, node, phase, elapsed).
    queue(prompts[0])
    res["live"] = wait(page, "() => { const l = (" + LIVE + ")(); "
                       "return l.some(t => t.includes('processing')) ? l : null; }",
                       what="a running job")
    page.locator("[data-runware-panel]").screenshot(path=f"{shots}/panel-running.png")
    first = card_with(page, lambda c: c["badge"] == "succeeded", "the first job to finish")

    # 2. A job interrupted after its submission: not collected, then Recover.
    before = accepted()
    queue(prompts[1])
    deadline = time.monotonic() + 60
    while accepted() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    post("/interrupt", {})
    pending = card_with(page, lambda c: c["badge"] == "not collected",
                        "the interrupted job in the panel")
    res["pending"] = page.evaluate(CARD, pending["task"])
    submissions = accepted()
    page.locator(f'[data-task-uuid="{pending["task"]}"] button', has_text="Recover").click()
    res["recovering"] = wait(page, "() => { const l = (" + LIVE + ")(); "
                             "return l.some(t => t.includes('Recover')) ? l : null; }",
                             what="Recover in the running list", timeout=30)
    card_with(page, lambda c: c["task"] == pending["task"] and c["badge"] == "succeeded",
              "the recovered job")
    res["recovered"] = page.evaluate(CARD, pending["task"])
    res["new_submissions_by_recover"] = accepted() - submissions
    res["first"] = page.evaluate(CARD, first["task"])
    res["video"] = page.evaluate('''async () => {
      const v = document.querySelector('[data-runware-panel] video');
      if (!v) return null;
      for (let i = 0; i < 100 && v.readyState < 1 && !v.error; i++)
        await new Promise(r => setTimeout(r, 100));
      return {src: v.currentSrc, readyState: v.readyState, duration: v.duration,
              error: v.error ? v.error.code : null};
    }''')
    res["csv"] = page.evaluate('''async () => {
      const a = [...document.querySelectorAll('[data-runware-panel] a')]
        .find(a => a.textContent === 'Export CSV');
      const r = await fetch(a.href);
      return {href: a.getAttribute('href'), status: r.status, text: await r.text()};
    }''')

    # 3. The screenshot for the README: a job running, two finished, totals.
    queue(prompts[2])
    wait(page, "() => { const l = (" + LIVE + ")(); "
         "return l.some(t => t.includes('processing')) ? l : null; }", what="the third job")
    page.wait_for_timeout(1200)
    page.locator("[data-runware-panel]").screenshot(path=f"{shots}/panel.png")
    res["text"] = page.evaluate(PANEL_TEXT)
    card_with(page, lambda c: c["badge"] == "succeeded" and c["task"] not in (
        first["task"], pending["task"]), "the third job to finish")

    # 4. Settings -> Runware -> Daily spend limit: stored on the server, shown in the panel.
    page.evaluate("() => app.extensionManager.command.execute('Comfy.ShowSettingsDialog')")
    # (The open panel's own title says "Runware" too: click the dialog's category.)
    page.get_by_role("dialog").get_by_text("Runware", exact=True).first.click()
    page.wait_for_selector(".runware-limit-setting input", timeout=20000)
    setting = page.locator(".runware-limit-setting")
    setting.locator("input").fill("abc")
    setting.get_by_role("button", name="Save").click()
    page.wait_for_timeout(300)
    res["limit_bad"] = setting.locator("[role=status]").inner_text()
    setting.locator("input").fill("5")
    setting.get_by_role("button", name="Save").click()
    wait(page, "() => document.querySelector('.runware-limit-setting [role=status]')"
         ".textContent.includes('$5.00')", what="the saved limit")
    res["limit_status"] = setting.locator("[role=status]").inner_text()
    res["limit_route"] = page.evaluate("async () => (await (await fetch("
                                       "'/api/runware_ovi_sync3/limit')).json())")
    res["limit_setting_value"] = page.evaluate(
        "() => app.extensionManager.setting.get('Runware.DailySpendLimit')")
    page.keyboard.press("Escape")
    page.wait_for_timeout(500)
    page.evaluate(OPEN)
    res["limit_line"] = wait(page, "() => { const t = document.querySelector("
                             "'[data-runware-panel] .rw-limit')?.textContent ?? ''; "
                             "return t.includes('$5.00') ? t : null; }",
                             what="the limit in the panel", timeout=20)
    post("/runware_ovi_sync3/limit", {"limit_usd": 0})
    res["console"] = list(errors)

    # 5. Nodes 2.0: the same tab.
    vue = {"open": start(page, errors, "vue")}
    out["modes"]["vue"] = vue
    if vue["open"]["shown"]:
        vue["cards"] = card_with(page, lambda c: c["badge"] == "succeeded",
                                 "jobs in the Nodes 2.0 page", timeout=30) and \
            page.evaluate(CARDS)
        vue["vue_nodes"] = page.evaluate("() => document.querySelectorAll('[data-node-id]')"
                                         ".length")
        page.locator("[data-runware-panel]").screenshot(path=f"{shots}/panel-vue.png")
    vue["console"] = list(errors)
    ctx.close()
print(json.dumps(out))
"""


def test_runware_panel_in_the_sidebar(stack, object_info):
    """The Runware tab in a real browser, with the classic canvas and with Nodes 2.0: a job
    running live, a job interrupted after its submission recovered from the panel without
    a second submission, totals, a playable preview through /view, CSV export."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (set CHROMIUM_PATH)")
    python = _python_with_playwright([sys.executable, stack.python])
    if python is None:
        pytest.skip("the Python playwright package is in neither this Python nor COMFYUI_PYTHON")
    shots = Path(os.environ.get("E2E_SCREENSHOT_DIR") or stack.work / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    # A double of its own whose jobs take long enough to watch (and interrupt) them.
    slow_log = stack.work / "double-slow.log"
    _, slow_url = stack.launch_double(slow_log, stack.work / "double-slow", job_seconds=6)
    stack.api_url = slow_url
    stack.restart_comfyui()
    workflow = _load(REPO_ROOT / "example_workflows/ovi_text_to_video.json")
    prompts = []
    for seed in (1001, 1002, 1003):
        prompt = to_api_prompt(workflow, object_info)
        prompt["1"]["inputs"]["seed"] = seed
        prompts.append(prompt)
    proc = subprocess.run(
        [python, "-c", PANEL_SCRIPT, stack.base, CHROMIUM, str(shots), str(slow_log)],
        input=json.dumps(prompts), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-4000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    (shots / "panel.json").write_text(json.dumps(result, indent=1))
    print(f"\nfrontend {result.get('frontend') or '(< 1.30)'}: panel "
          f"{'shown' if result['modes']['canvas']['open']['shown'] else 'NOT shown'}")
    canvas = result["modes"]["canvas"]
    if not canvas["open"]["api"]:
        pytest.skip("this frontend has no sidebar tab API (the pack leaves the tab out)")
    assert canvas["open"]["shown"], result.get("panel_text")
    assert "Nothing running." in canvas["empty_text"] and "No jobs yet" in canvas["empty_text"]
    live = " ".join(canvas["live"])
    assert "Ovi" in live and "node 1" in live and "processing" in live
    assert re.search(r"\b\d+s\b", live), live  # elapsed
    pending = canvas["pending"]
    assert pending["recover"] and "not collected" in pending["text"]
    assert "Recover" in " ".join(canvas["recovering"])
    recovered = canvas["recovered"]
    assert recovered["badge"] == "succeeded" and not recovered["recover"]
    assert recovered["video"] and "/view?" in recovered["video"]
    assert canvas["new_submissions_by_recover"] == 0
    assert stack_submissions(slow_log) == 3  # three seeds, three jobs: Recover paid nothing
    video = canvas["video"]
    assert video and video["error"] is None and video["readyState"] >= 1, video
    assert abs(video["duration"] - 5.0) < 0.3, video
    assert canvas["csv"]["status"] == 200
    assert canvas["csv"]["text"].lstrip("\ufeff").startswith("submitted,finished,model")
    assert pending["text"] and recovered and canvas["csv"]["text"].count("\n") >= 3
    for part in ("This session", "Today", "Last 30 days", "3 jobs", "Export CSV"):
        assert part in canvas["text"], (part, canvas["text"])
    assert [e for e in canvas["console"] if _ours(e)] == [], canvas["console"]
    assert "US dollars" in canvas["limit_bad"], canvas["limit_bad"]
    assert "$5.00" in canvas["limit_status"]
    assert canvas["limit_route"]["limit_usd"] == 5 and canvas["limit_route"]["source"] == "setting"
    assert not canvas["limit_setting_value"]  # the value lives on the server, not in settings
    assert "Daily limit $5.00" in canvas["limit_line"]
    assert json.loads((stack.work / "user" / "runware_spend_limit.json").read_text()) == {
        "daily_limit_usd": 0}
    vue = result["modes"]["vue"]
    assert vue["open"]["shown"], vue
    assert len(vue["cards"]) == 3, vue
    assert [e for e in vue["console"] if _ours(e)] == [], vue["console"]


def stack_submissions(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines()
               if "double: accepted " in line)
