"""The API key (storage, routes, no leaks) and the live status shown on the node."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import requests
import torch
from aiohttp import web
from conftest import PACK, REPO_ROOT, TEST_KEY, pack_module
from media_factory import write_mp4

keystore = pack_module("nodes.runware.keystore")
config_mod = pack_module("nodes.runware.config")
errors = pack_module("nodes.runware.errors")
routes = pack_module("nodes.routes")
host = pack_module("nodes.host")
nodes = PACK.NODE_CLASS_MAPPINGS


# -- key storage ----------------------------------------------------------------------------


def test_key_file_is_private_and_env_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    store = keystore.KeyStore(tmp_path / "user" / "runware_api_key")
    assert store.status().configured is False
    store.save("  abcd-1234-wxyz \n")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.resolve() == ("abcd-1234-wxyz", "file")
    assert store.status().last4 == "wxyz"
    monkeypatch.setenv("RUNWARE_API_KEY", "from-env-9999")
    assert store.resolve() == ("from-env-9999", "environment")
    monkeypatch.delenv("RUNWARE_API_KEY")
    assert store.delete() and store.resolve() == (None, None)


def test_config_reads_the_key_file_and_missing_key_says_where(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    path = tmp_path / "runware_api_key"
    config = config_mod.ClientConfig.from_env(key_file=path)
    with pytest.raises(errors.MissingApiKeyError) as info:
        config.require_key()
    text = str(info.value)
    assert "Settings" in text and "RUNWARE_API_KEY" in text
    # Names the file, never its absolute path (errors reach whoever uses the page).
    assert "runware_api_key in ComfyUI's user directory" in text and str(path) not in text
    assert not isinstance(info.value, errors.CancelledError)
    keystore.KeyStore(path).save("k-from-file")
    config = config_mod.ClientConfig.from_env(key_file=path)
    assert config.require_key() == "k-from-file" and config.key_source == "file"


def test_rejected_key_error_says_where_to_set_it(double, fast_config):
    pack_module("nodes.runware.client")
    err = errors.error_from_item({"code": "invalidApiKey", "message": "bad key"}, 401)
    assert "Settings" in str(err) and "RUNWARE_API_KEY" in str(err)
    assert isinstance(err, errors.AuthError)


# -- routes over real HTTP ------------------------------------------------------------------


@pytest.fixture
def key_server(double, tmp_path, monkeypatch):
    """The pack's routes on a real aiohttp server, validating keys against the double."""
    monkeypatch.setenv("RUNWARE_API_URL", double.base_url)
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    store = keystore.KeyStore(tmp_path / "user" / "runware_api_key")
    app = web.Application()
    for method, path, handler in routes.make_handlers(lambda: store):
        app.router.add_route(method, path, handler)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}{routes.PREFIX}/key", store
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_key_routes_set_status_delete(key_server, double):
    url, store = key_server
    assert requests.get(url, timeout=10).json()["configured"] is False
    reply = requests.post(url, json={"key": TEST_KEY}, timeout=30)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["configured"] and body["validated"] and body["source"] == "file"
    assert body["last4"] == TEST_KEY[-4:]
    assert TEST_KEY not in reply.text
    assert store.resolve() == (TEST_KEY, "file")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert double.count("ping") == 1  # validated with one cheap authenticated request
    status = requests.get(url, timeout=10)
    assert status.json()["last4"] == TEST_KEY[-4:] and TEST_KEY not in status.text
    gone = requests.delete(url, timeout=10)
    assert gone.json()["configured"] is False and not store.path.exists()


def test_rejected_key_is_not_stored(key_server):
    url, store = key_server
    reply = requests.post(url, json={"key": "wrong-key-123"}, timeout=30)
    assert reply.status_code == 401 and "refused" in reply.json()["error"]
    assert not store.path.exists()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
    ],
)
def test_other_origins_are_refused(key_server, headers, status):
    url, store = key_server
    reply = requests.post(url, json={"key": TEST_KEY}, headers=headers, timeout=10)
    assert reply.status_code == status
    assert requests.delete(url, headers=headers, timeout=10).status_code == status
    assert requests.get(url, headers=headers, timeout=10).status_code == status
    assert not store.path.exists()


def test_same_origin_and_json_only(key_server):
    url, store = key_server
    origin = url.split("/runware")[0]
    form = requests.post(url, data={"key": TEST_KEY}, headers={"Origin": origin}, timeout=10)
    assert form.status_code == 415 and not store.path.exists()
    ok = requests.post(url, json={"key": TEST_KEY}, headers={"Origin": origin}, timeout=30)
    assert ok.status_code == 200


def test_env_key_shows_as_environment(key_server, monkeypatch):
    url, _ = key_server
    monkeypatch.setenv("RUNWARE_API_KEY", "env-key-5678")
    body = requests.get(url, timeout=10).json()
    assert body["source"] == "environment" and body["last4"] == "5678"


# -- live status and progress ----------------------------------------------------------------


@pytest.fixture
def fake_comfy(monkeypatch):
    """Stand-ins for ComfyUI's PromptServer and ProgressBar that record what they get."""
    texts: list[tuple[float, str, str]] = []
    bars: list[float] = []

    class Instance:
        routes = None

        def send_progress_text(self, text, node_id):
            texts.append((time.monotonic(), node_id, text))

    class PromptServer:
        instance = Instance()

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            bars.append(value)

    server = types.ModuleType("server")
    server.PromptServer = PromptServer
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    comfy = types.ModuleType("comfy")
    comfy.utils = utils
    monkeypatch.setitem(sys.modules, "server", server)
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    return texts, bars




def ovi(**kwargs):
    args = dict(prompt="A host says <S>welcome<E>", seed=2, steps=30, fps=12,
                video_cfg_scale=5.0, audio_cfg_scale=4.0, unique_id="7")
    args.update(kwargs)
    return asyncio.run(nodes["RunwareOvi"]().generate(**args))


def test_status_text_every_second_with_phase_elapsed_and_cost(env, fake_comfy):
    texts, bars = fake_comfy
    env.job_seconds = 2.6
    out = ovi()
    lines = [t for _, node, t in texts if node == "7"]
    stamps = [s for s, node, _ in texts if node == "7"]
    assert any("processing" in t for t in lines)
    assert any("queued" in t for t in lines) and any("downloading" in t for t in lines)
    assert any("decoding" in t for t in lines)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert max(gaps) < 1.3, gaps  # at least once a second, however slow the polls
    assert any(t.endswith("s") and "·" in t for t in lines)
    assert "$" in lines[-1] and "done" in lines[-1]
    assert bars and bars[-1] == 100 and bars == sorted(bars)
    assert any(0 < b < 100 for b in bars)  # Runware's own progress drove the bar
    ui = out["ui"]
    assert ui["animated"] == (True,) and ui["images"][0]["type"] == "output"
    assert ui["images"][0]["filename"].endswith(".mp4")


def test_cached_run_says_no_new_charge(env, fake_comfy):
    texts, _ = fake_comfy
    ovi()
    texts.clear()
    ovi()
    assert "no new charge" in texts[-1][2]


def test_failure_status_names_code_and_task(env, fake_comfy):
    texts, _ = fake_comfy
    env.fail_next_job(shape="data", code="inferenceError", message="boom")
    with pytest.raises(errors.TaskFailedError) as info:
        ovi()
    assert info.value.task_uuid in texts[-1][2] and "inferenceError" in texts[-1][2]
    assert "taskUUID" in str(info.value) and "try again" in str(info.value)


# -- the key never leaks -------------------------------------------------------------------------


LEAK_KEY = "rwk-LEAKCANARY-7f3e9a1c5b2d4e6f8a0b"


def test_the_key_never_leaks_anywhere(double, monkeypatch, tmp_path, caplog):
    """Run both nodes end to end with a known key, then search every artifact for it."""
    double.stop()
    leak_double = pack_module("nodes.runware.double").RunwareDouble(
        api_key=LEAK_KEY, job_seconds=0.1, storage_dir=tmp_path / "double")
    leak_double.start()
    try:
        monkeypatch.setenv("RUNWARE_API_URL", leak_double.base_url)
        monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
        monkeypatch.setenv("RUNWARE_OUTPUT_DIR", str(tmp_path / "output"))
        monkeypatch.setenv("RUNWARE_TEMP_DIR", str(tmp_path / "temp"))
        monkeypatch.setenv("RUNWARE_USER_DIR", str(tmp_path / "user"))
        key_path = tmp_path / "user" / keystore.KEY_FILE_NAME
        keystore.KeyStore(key_path).save(LEAK_KEY)  # as the settings dialog would
        caplog.set_level(logging.DEBUG)
        texts: list[str] = []
        monkeypatch.setattr(host, "send_progress_text", lambda text, node: texts.append(text))
        produced: list[str] = []

        ovi_args = dict(prompt="A cat says <S>meow<E>", seed=1, steps=30, fps=12,
                        video_cfg_scale=5.0, audio_cfg_scale=4.0,
                        image=torch.rand(1, 48, 64, 3), unique_id="1")
        out = asyncio.run(nodes["RunwareOvi"]().generate(**ovi_args))
        produced += out["result"][4] + [json.dumps(out["ui"])]
        clip = write_mp4(tmp_path / "face.mp4", width=96, height=64, fps=12, frames=24)
        tone = {"waveform": torch.rand(1, 1, 16000) - 0.5, "sample_rate": 16000}
        segments = nodes["RunwareSync3Segment"]().build(tone, 0.0, 1.0)[0]
        for voice in ({"audio": tone}, {"segments": segments}, {"speech_text": "hi there"}):
            out = asyncio.run(nodes["RunwareSync3"]().lipsync(
                sync_mode="cut_off", video=host.video_from_file(clip), unique_id="2", **voice))
            produced += out["result"][4]
        # Errors of several kinds, with the key configured.
        leak_double.fail_next_job(shape="errors", code="inferenceError", message="x")
        leak_double.fail_next(402, code="insufficientCredits", task_type="videoInference")
        for attempt in range(2):
            with pytest.raises(errors.RunwareError) as info:
                asyncio.run(nodes["RunwareOvi"]().generate(**{**ovi_args, "seed": 50 + attempt}))
            produced += [str(info.value), repr(info.value), json.dumps(info.value.as_dict())]
        with pytest.raises(errors.ValidationError) as info:
            asyncio.run(nodes["RunwareOvi"]().generate(**{**ovi_args, "steps": 0}))
        produced.append(str(info.value))
        # What a shared workflow / API prompt / history would hold: the node inputs.
        for path in (REPO_ROOT / "example_workflows").glob("*.json"):
            produced.append(path.read_text())
        produced.append(json.dumps({k: v for k, v in ovi_args.items() if k != "image"}))
        produced += texts
        produced.append(caplog.text)
        produced.append(repr(leak_double.log))
        produced.append(json.dumps(routes.KeyStore(key_path).status().as_dict()))
        for text in produced:
            assert LEAK_KEY not in text
            assert LEAK_KEY[4:] not in text
        scanned = 0
        for root in (tmp_path / "output", tmp_path / "temp", tmp_path / "double"):
            for path in root.rglob("*"):
                if path.is_file():
                    scanned += 1
                    assert LEAK_KEY.encode() not in path.read_bytes(), path
        assert scanned >= 10  # results, the store (jobs, entries, uploads), uploads
        assert (tmp_path / "output" / "runware" / "store.sqlite").is_file()
        assert LEAK_KEY in key_path.read_text()  # the one place it lives
        assert os.environ.get("RUNWARE_API_KEY") is None
    finally:
        leak_double.stop()


def test_no_node_has_a_key_input():
    for node_id, cls in nodes.items():
        definition = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name in definition.get(section, {}):
                assert "key" not in name.lower(), f"{node_id}.{name}"


def test_web_extension_never_stores_the_key():
    import re

    for path in (REPO_ROOT / "web").rglob("*.js"):
        code = re.sub(r"//[^\n]*", "", path.read_text())  # comments may mention it
        assert not re.search(r"(localStorage|sessionStorage)\s*[.\[]", code), path
    assert not list((REPO_ROOT / "web").rglob("*.test.*"))  # tests stay out of web/


def test_routes_are_registered_with_comfyui_when_present(fake_comfy, monkeypatch):
    registered = []

    class Routes:
        def route(self, method, path):
            return lambda handler: registered.append((method, path))

    sys.modules["server"].PromptServer.instance.routes = Routes()
    routes.register()
    assert ("POST", "/runware_ovi_sync3/key") in registered
    assert ("GET", "/runware_ovi_sync3/key") in registered
    assert ("DELETE", "/runware_ovi_sync3/key") in registered
    assert Path(routes.key_file()).name == keystore.KEY_FILE_NAME


def test_status_text_is_html_escaped(fake_comfy):
    texts, _ = fake_comfy
    host.send_progress_text("prompt: <S> is never closed & more", "9")
    assert texts[-1][2] == "prompt: &lt;S&gt; is never closed &amp; more"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("127.0.0.1:8188", True), ("localhost:8188", True), ("[::1]:8188", True),
     ("192.168.1.20:8188", True), ("evil.example:8188", False), ("mybox.lan:8188", False)],
)
def test_dns_rebinding_is_refused_by_host_name(key_server, host, allowed):
    url, store = key_server
    origin = f"http://{host}"
    reply = requests.post(url, json={"key": TEST_KEY}, timeout=30,
                          headers={"Host": host, "Origin": origin,
                                   "Sec-Fetch-Site": "same-origin"})
    assert (reply.status_code == 200) is allowed, reply.text
    assert store.path.exists() is allowed


def test_allowed_host_names_can_be_configured(key_server, monkeypatch):
    url, store = key_server
    monkeypatch.setenv("RUNWARE_ALLOWED_HOSTS", "mybox.lan, other.lan")
    reply = requests.post(url, json={"key": TEST_KEY}, timeout=30,
                          headers={"Host": "mybox.lan:8188", "Origin": "http://mybox.lan:8188"})
    assert reply.status_code == 200


def test_key_with_control_characters_is_refused_clearly(key_server, tmp_path, monkeypatch):
    url, store = key_server
    reply = requests.post(url, json={"key": "abc\x00def"}, timeout=10)
    assert reply.status_code == 400 and "cannot have" in reply.json()["error"]
    monkeypatch.setenv("RUNWARE_API_KEY", "abc\x7fdef")
    with pytest.raises(errors.MissingApiKeyError) as info:
        config_mod.ClientConfig.from_env().require_key()
    assert "cannot have" in str(info.value) and "abc" not in str(info.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0", "soon"])
def test_job_timeout_must_be_a_positive_finite_number(monkeypatch, value):
    monkeypatch.setenv("RUNWARE_JOB_TIMEOUT", value)
    with pytest.raises(ValueError, match="RUNWARE_JOB_TIMEOUT"):
        config_mod.ClientConfig.from_env()
