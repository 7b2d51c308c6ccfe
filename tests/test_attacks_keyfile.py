"""The key file and the key routes: read like users write it, saved safely whatever is
planted next to it, and never shown beyond its last 4 characters.

Kept from the last adversarial round (those held, and stay tested): CSRF (another site,
a ``null`` origin, form content types), DNS rebinding, planted symlinks, mode 0600,
concurrent saves, kill -9 during a save, a full disk during a save.
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import torch
from conftest import PACK, REPO_ROOT, TEST_KEY, pack_module
from test_key_and_status import key_server  # noqa: F401 - a fixture, used by name

keystore = pack_module("nodes.runware.keystore")
config_mod = pack_module("nodes.runware.config")
errors = pack_module("nodes.runware.errors")
routes = pack_module("nodes.routes")
nodes = PACK.NODE_CLASS_MAPPINGS

KEY = "rwk-FileKey-0123456789abcdefABCD"
POSIX = os.name == "posix"


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)


def key_path(tmp_path: Path) -> Path:
    return tmp_path / "user" / "runware_api_key"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- reading: the ways people write a key file ------------------------------------------------

WRITTEN = {
    "plain": KEY.encode(),
    "newline": (KEY + "\n").encode(),
    "crlf": (KEY + "\r\n").encode(),
    "blank lines and spaces": f"\n  {KEY}  \n\n".encode(),
    "tab": f"\t{KEY}\t".encode(),
    "utf-8 bom": codecs.BOM_UTF8 + (KEY + "\r\n").encode(),
    # Windows PowerShell 5: echo KEY > file  ->  UTF-16 LE with BOM, CRLF
    "powershell 5 (utf-16 le bom, crlf)": codecs.BOM_UTF16_LE + (KEY + "\r\n").encode(
        "utf-16-le"),
    "utf-16 be bom": codecs.BOM_UTF16_BE + (KEY + "\n").encode("utf-16-be"),
    "utf-16 le without bom": (KEY + "\r\n").encode("utf-16-le"),
    "utf-16 be without bom": KEY.encode("utf-16-be"),
    "utf-8 bom twice (notepad + paste)": codecs.BOM_UTF8 + "\ufeff".encode() + KEY.encode(),
}


@pytest.mark.parametrize("shape", list(WRITTEN))
def test_key_files_are_read_the_way_users_write_them(tmp_path, shape):
    path = write(key_path(tmp_path), WRITTEN[shape])
    assert keystore.KeyStore(path).resolve() == (KEY, "file")
    assert config_mod.ClientConfig.from_env(key_file=path).require_key() == KEY


UNREADABLE = {
    "binary junk": (bytes(range(256)) * 3, "not text in UTF-8 or UTF-16"),
    "latin-1 text": ("schl\u00fcssel".encode("latin-1"), "not text in UTF-8 or UTF-16"),
    "utf-16 bom, odd length": (codecs.BOM_UTF16_LE + b"k\x00e", "not text"),
    "non-ascii key": ("\u043a\u043b\u044e\u0447-0123456789".encode(), "cannot have"),
    "nul inside": (b"abc\x00def-0123456789", "cannot have"),
    "control char": (b"abc\x1bdef-0123456789", "cannot have"),
    "a whole config file": (b"x" * 5000, "bytes long"),
}


def assert_clear_read_error(path: Path, reason: str) -> None:
    # Reading settings never fails: the key is needed only when a request is made.
    config = config_mod.ClientConfig.from_env(key_file=path)
    with pytest.raises(errors.KeyFileError) as info:
        config.require_key()
    text = str(info.value)
    assert "key file" in text and "could not be read" in text and reason in text, text
    assert "runware_api_key in ComfyUI's user directory" in text
    assert str(path.parent) not in text  # no absolute path
    assert "RUNWARE_API_KEY" in text  # and how to fix it
    assert isinstance(info.value, errors.MissingApiKeyError)
    status = keystore.KeyStore(path).status()
    assert status.configured is False and status.error and reason in status.error
    assert str(path.parent) not in str(status.as_dict())


@pytest.mark.parametrize("shape", list(UNREADABLE))
def test_unreadable_key_files_are_a_clear_error_not_a_crash(tmp_path, shape):
    data, reason = UNREADABLE[shape]
    assert_clear_read_error(write(key_path(tmp_path), data), reason)


def test_a_folder_in_place_of_the_key_file(tmp_path):
    path = key_path(tmp_path)
    path.mkdir(parents=True)
    assert_clear_read_error(path, "folder")


@pytest.mark.skipif(not POSIX, reason="FIFOs and /dev/zero are POSIX")
def test_a_fifo_or_device_in_place_of_the_key_file_does_not_hang(tmp_path):
    path = key_path(tmp_path)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    started = time.monotonic()
    assert_clear_read_error(path, "not a regular file")
    path.unlink()
    path.symlink_to("/dev/zero")
    assert_clear_read_error(path, "not a regular file")
    assert time.monotonic() - started < 5


@pytest.mark.skipif(not POSIX or os.geteuid() == 0, reason="root reads any file")
def test_a_key_file_without_read_permission(tmp_path):
    path = write(key_path(tmp_path), KEY.encode())
    path.chmod(0)
    try:
        assert_clear_read_error(path, "permission denied")
    finally:
        path.chmod(0o600)


def test_permission_denied_is_a_clear_error(tmp_path, monkeypatch):
    """The same as above, where the tests run as root (which reads any file)."""
    path = write(key_path(tmp_path), KEY.encode())
    real_open = os.open

    def refuse(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(keystore.os, "open", refuse)
    assert_clear_read_error(path, "permission denied")


def test_the_environment_wins_without_reading_a_broken_file(tmp_path, monkeypatch):
    path = write(key_path(tmp_path), bytes(range(256)))
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    assert config_mod.ClientConfig.from_env(key_file=path).require_key() == KEY


def test_an_empty_or_missing_file_means_no_key(tmp_path):
    path = key_path(tmp_path)
    for state in ("missing", "empty", "blank"):
        if state != "missing":
            write(path, b"" if state == "empty" else b" \r\n\r\n")
        with pytest.raises(errors.MissingApiKeyError) as info:
            config_mod.ClientConfig.from_env(key_file=path).require_key()
        assert not isinstance(info.value, errors.KeyFileError)
        assert "No Runware API key is configured" in str(info.value)


def test_a_cached_result_is_served_without_a_readable_key(env, monkeypatch, tmp_path):
    """The key is needed only for a request: an unreadable key file must not stop a
    re-queue that the cache answers; a new request then says what is wrong, before any
    upload or paid call."""
    args = dict(prompt="A cat says <S>hi<E>", seed=3, steps=30, fps=12,
                video_cfg_scale=5.0, audio_cfg_scale=4.0, unique_id="1")
    first = asyncio.run(nodes["RunwareOvi"]().generate(**args))
    monkeypatch.delenv("RUNWARE_API_KEY")
    write(tmp_path / "user" / "runware_api_key", bytes(range(256)))  # junk key file
    before = len(env.log)
    again = asyncio.run(nodes["RunwareOvi"]().generate(**args))
    assert again["result"][4] and '"cached": true' in again["result"][4][0]
    assert again["result"][4][0].replace('"cached": true', "") == \
        first["result"][4][0].replace('"cached": false', "")
    assert len(env.log) == before  # nothing asked of Runware
    with pytest.raises(errors.KeyFileError, match="could not be read"):
        asyncio.run(nodes["RunwareOvi"]().generate(**{**args, "seed": 4,
                                                      "image": torch.rand(1, 32, 32, 3)}))
    assert len(env.log) == before  # no upload, no submission


# -- saving --------------------------------------------------------------------------------------


def test_saved_key_is_private_and_replaces_a_world_readable_file(tmp_path):
    path = write(key_path(tmp_path), b"old-key-0123456789")
    path.chmod(0o644)
    keystore.KeyStore(path).save(KEY)
    assert path.read_text() == KEY
    if POSIX:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
def test_saving_never_follows_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = key_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.symlink_to(victim)
    store = keystore.KeyStore(path)
    store.save(KEY)
    assert victim.read_text() == "precious"
    assert not path.is_symlink() and path.read_text() == KEY
    # Removing the key removes a link, never its target.
    path.unlink()
    path.symlink_to(victim)
    assert store.delete() and victim.read_text() == "precious"


def test_temp_names_cannot_be_predicted_or_collide(tmp_path):
    path = key_path(tmp_path)
    path.parent.mkdir(parents=True)
    # Whatever an attacker planted under the old fixed-pattern names is left alone.
    for name in (f".runware_api_key.{os.getpid()}.tmp", ".runware_api_key.tmp"):
        (path.parent / name).mkdir()
    keystore.KeyStore(path).save(KEY)
    assert path.read_text() == KEY


files_mod = pack_module("nodes.runware.files")


def plant(folder: Path, dest_name: str, tag: str, victim: Path) -> tuple[Path, Path]:
    """A folder and a link to ``victim`` at the next two temp names of ``dest_name``."""
    pid = os.getpid()
    planted_dir = folder / f".{dest_name}.{pid}.aaaaaaaa.{tag}"
    planted_dir.mkdir(parents=True)
    (planted_dir / "inside.txt").write_text("keep")
    planted_link = folder / f".{dest_name}.{pid}.bbbbbbbb.{tag}"
    planted_link.symlink_to(victim)
    return planted_dir, planted_link


@pytest.fixture
def taken_names(monkeypatch):
    """The next two temp names drawn are the planted ones, then random ones again."""
    queue = ["aaaaaaaa", "bbbbbbbb"]
    real = files_mod._token
    monkeypatch.setattr(files_mod, "_token", lambda: queue.pop(0) if queue else real())
    return queue


def assert_left_alone(planted_dir: Path, planted_link: Path, victim: Path) -> None:
    assert victim.read_text() == "precious"  # never written through the link
    assert planted_link.is_symlink() and os.readlink(planted_link) == str(victim)
    assert planted_dir.is_dir() and (planted_dir / "inside.txt").read_text() == "keep"


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
def test_saving_skips_a_folder_and_a_link_planted_at_the_temp_names(tmp_path, taken_names):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = key_path(tmp_path)
    planted = plant(path.parent, path.name, "tmp", victim)
    keystore.KeyStore(path).save(KEY)
    assert taken_names == []  # both planted names were tried
    assert path.read_text() == KEY and not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert_left_alone(*planted, victim)
    # Only the key and what was planted: no temp file of ours is left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name, planted[0].name, planted[1].name])


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
def test_atomic_path_skips_a_folder_and_a_link_planted_at_the_temp_names(tmp_path,
                                                                         taken_names):
    # The writer of encoded inputs and converted videos (PyAV writes into the temp path).
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    dest = tmp_path / "out" / "clip.mp4"
    planted = plant(dest.parent, dest.name, "part", victim)
    with files_mod.atomic_path(dest) as tmp:
        assert tmp.is_file() and not tmp.is_symlink() and tmp.parent == dest.parent
        with open(tmp, "wb") as fh:
            fh.write(b"video")
    assert dest.read_bytes() == b"video" and taken_names == []
    assert_left_alone(*planted, victim)


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
def test_atomic_path_never_renames_a_link_swapped_in_for_its_temp_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    dest = tmp_path / "clip.mp4"
    with pytest.raises(files_mod.TempFileReplaced):
        with files_mod.atomic_path(dest) as tmp:
            tmp.unlink()
            tmp.symlink_to(victim)
    assert not dest.exists() and not os.path.lexists(dest)
    assert victim.read_text() == "precious"


def test_atomic_write_gives_up_after_a_few_taken_names(tmp_path, monkeypatch):
    dest = tmp_path / "data.json"
    (tmp_path / f".data.json.{os.getpid()}.cccccccc.tmp").mkdir()
    monkeypatch.setattr(files_mod, "_token", lambda: "cccccccc")
    with pytest.raises((FileExistsError, PermissionError)):  # Windows: "access denied"
        files_mod.atomic_write(dest, b"{}")
    assert not dest.exists()


def test_concurrent_saves_leave_one_whole_key(tmp_path):
    path = key_path(tmp_path)
    keys = [f"rwk-Concurrent-{i:02d}-" + "x" * 40 for i in range(8)]
    failures = []

    def saver(key):
        try:
            for _ in range(25):
                keystore.KeyStore(path).save(key)
                assert path.read_text() in keys  # every read sees a whole key
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=saver, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert path.read_text() in keys
    assert not list(path.parent.glob(".*.tmp"))


# Child processes load only the core package (fast: no torch), by path as ComfyUI would.
LOAD_CORE = """
import importlib, sys
sys.path.insert(0, {root!r})
from offline_runware import load_package
sys.path.pop(0)
load_package(__import__("pathlib").Path({core!r}), "rwcore")
KeyStore = importlib.import_module("rwcore.keystore").KeyStore
"""
CORE = str(REPO_ROOT / "nodes" / "runware")

SAVER = LOAD_CORE + """
store = KeyStore(__import__("pathlib").Path({path!r}))
keys = {keys!r}
store.save(keys[1])
print("ready", flush=True)  # saving in a loop from here on, until killed
i = 0
while True:
    store.save(keys[i % 2])
    i += 1
"""


@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX")
def test_kill_9_during_saves_leaves_the_old_or_the_new_key(tmp_path):
    path = key_path(tmp_path)
    keys = ["rwk-Old-" + "a" * 3000, "rwk-New-" + "b" * 3000]  # long: a wide write window
    keystore.KeyStore(path).save(keys[0])
    script = SAVER.format(root=str(REPO_ROOT), core=CORE, path=str(path), keys=keys)
    for delay in (0.05, 0.13, 0.21, 0.37, 0.5):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                cwd=REPO_ROOT)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert path.read_text() in keys, "a torn key file"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A killed save may leave a private temp file; a later save sweeps stale ones.
    leftovers = list(path.parent.glob(".*.tmp"))
    for old in leftovers:
        assert stat.S_IMODE(old.lstat().st_mode) == 0o600
        os.utime(old, (time.time() - 3600, time.time() - 3600))
    keystore.KeyStore(path).save(keys[1])
    assert not list(path.parent.glob(".*.tmp"))


DISK_FULL = LOAD_CORE + """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
store = KeyStore(__import__("pathlib").Path({path!r}))
try:
    store.save({key!r})
except OSError as exc:
    print("failed", exc.errno)
else:
    print("saved")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE on Linux")
def test_a_full_disk_during_a_save_keeps_the_old_key(tmp_path):
    path = key_path(tmp_path)
    keystore.KeyStore(path).save(KEY)
    script = DISK_FULL.format(root=str(REPO_ROOT), core=CORE, path=str(path),
                              key="rwk-TooBig-" + "z" * 500)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=60)
    assert out.stdout.split()[:1] == ["failed"], out.stdout + out.stderr
    assert path.read_text() == KEY  # the old key survives
    assert not list(path.parent.glob(".*.tmp"))  # and no half-written temp file stays


def test_a_failed_save_is_a_clear_json_error_on_the_route(key_server, monkeypatch):  # noqa: F811
    url, store = key_server
    store.save(KEY)

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keystore.os, "write", disk_full)
    reply = requests.post(url, json={"key": TEST_KEY}, timeout=30)
    assert reply.status_code == 500
    assert "No space left on device" in reply.json()["error"]
    assert "unchanged" in reply.json()["error"]
    monkeypatch.undo()
    assert store.path.read_text() == KEY


# -- what the key routes show --------------------------------------------------------------------


@pytest.mark.parametrize("length", [4, 8, 11, 12, 13, 40])
def test_status_shows_at_most_the_last_4_and_none_of_a_short_key(key_server, length):  # noqa: F811
    url, store = key_server
    key = ("Zq7Kx9Wm" * 6)[:length]  # no common prefix: short keys stay scrubbed
    store.save(key)
    reply = requests.get(url, timeout=10)
    body = reply.json()
    assert reply.status_code == 200 and body["configured"] is True
    if length >= 12:
        assert body["last4"] == key[-4:]
    else:
        assert body["last4"] is None
    for i in range(len(key) - 4):  # no 5 characters of the key in a row, anywhere
        assert key[i:i + 5] not in reply.text
    if length < 12:
        for i in range(len(key) - 3):
            assert key[i:i + 4] not in reply.text


def test_status_never_shows_the_absolute_path(key_server, tmp_path):  # noqa: F811
    url, store = key_server
    for body in (requests.get(url, timeout=10).json(),
                 requests.post(url, json={"key": TEST_KEY}, timeout=30).json(),
                 requests.delete(url, timeout=10).json()):
        assert str(tmp_path) not in str(body)
        assert body["path"] == "runware_api_key in ComfyUI's user directory"


@pytest.mark.parametrize("data", [bytes(range(256)), b"\xff\xfe\x00"])
def test_status_of_an_unreadable_key_file_is_an_answer_not_a_500(key_server, data):  # noqa: F811
    url, store = key_server
    write(store.path, data)
    reply = requests.get(url, timeout=10)
    assert reply.status_code == 200
    body = reply.json()
    assert body["configured"] is False and "could not be read" in body["error"]
    store.path.unlink()
    store.path.mkdir()
    assert requests.get(url, timeout=10).json()["error"].endswith("not a file.")
    reply = requests.post(url, json={"key": TEST_KEY}, timeout=30)
    assert reply.status_code == 500 and "Could not save the key" in reply.json()["error"]


# -- CSRF and DNS rebinding (held last round; kept tested) ----------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", f"key={TEST_KEY}"),
        ("multipart/form-data; boundary=x",
         f'--x\r\nContent-Disposition: form-data; name="key"\r\n\r\n{TEST_KEY}\r\n--x--\r\n'),
        ("text/plain", f'{{"key": "{TEST_KEY}"}}'),  # a form can send JSON-looking text
        ("text/plain;charset=UTF-8", f'{{"key": "{TEST_KEY}"}}'),
        ("", f'{{"key": "{TEST_KEY}"}}'),
    ],
)
def test_what_a_plain_html_form_can_send_is_refused(key_server, content_type, body):  # noqa: F811
    url, store = key_server
    origin = url.split("/runware")[0]
    headers = {"Origin": origin}
    if content_type:
        headers["Content-Type"] = content_type
    reply = requests.post(url, data=body.encode(), headers=headers, timeout=10)
    assert reply.status_code == 415
    assert not store.path.exists()


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:1"},  # another port is another origin
        {"Origin": "http://127.0.0.1.evil.example"},
        {"Host": "127.0.0.1.nip.io:8188", "Origin": "http://127.0.0.1.nip.io:8188"},
        {"Host": "localhost.evil.example", "Origin": "http://localhost.evil.example"},
        {"Host": "[::1"},  # unparsable Host header
    ],
)
def test_cross_site_and_rebinding_requests_are_refused(key_server, headers):  # noqa: F811
    url, store = key_server
    store.save(KEY)
    for method in ("GET", "POST", "DELETE"):
        reply = requests.request(method, url, json={"key": TEST_KEY}, headers=headers,
                                 timeout=10)
        assert reply.status_code == 403, (method, reply.text)
        assert "FileKey" not in reply.text
    assert store.path.read_text() == KEY  # neither replaced nor deleted


@pytest.mark.parametrize("key", [None, 12345, ["a", "b"], {"k": "v"}, ""])
def test_a_key_that_is_not_a_string_is_refused(key_server, key):  # noqa: F811
    url, store = key_server
    reply = requests.post(url, json={"key": key}, timeout=10)
    assert reply.status_code == 400 and not store.path.exists()
