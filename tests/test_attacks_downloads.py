"""Result downloads against hostile HTTP servers run here on 127.0.0.1.

A result URL comes from a server reply, so the server (or a proxy, or someone on the
network) chooses it: redirects to internal addresses, endless or huge bodies, compression
bombs, trickles and lying ranges. Each server below plays one of those; the "API" is the
hostile server itself (RUNWARE_API_URL points at it, as with the local double), which is
the one origin allowed over plain http and on a loopback address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import http.server
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TEST_KEY, pack_module
from media_factory import write_mp4, write_wav
from test_money import accepted, journaled, ovi_job, run

client_mod = pack_module("nodes.runware.client")
errors = pack_module("nodes.runware.errors")
config_mod = pack_module("nodes.runware.config")
files_mod = pack_module("nodes.runware.files")
cache_mod = pack_module("nodes.runware.cache")
server_mod = pack_module("nodes.runware.double.server")
store_mod = pack_module("nodes.runware.store")
tasks_mod = pack_module("nodes.runware.tasks")

BODY = bytes(range(256)) * 400  # 100 KiB "video"
CAP = 256 * 1024


class Hostile:
    """A tiny HTTP/1.0 server: ``routes[path](handler)`` writes the whole answer."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[http.server.BaseHTTPRequestHandler], None]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = outer.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                try:
                    route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up on us: that is what some tests want

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: object, client_address: object) -> bool:
                outer.connections += 1  # counts connections, even ones that never speak HTTP
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bystander() -> Iterator[Hostile]:
    """Another local service (say ComfyUI itself, or a router's admin page)."""
    server = Hostile()
    server.routes["/secret"] = lambda h: send(h, 200, b"internal data")
    try:
        yield server
    finally:
        server.stop()


def send(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"",
         headers: dict[str, str] | None = None, length: bool = True) -> None:
    h.send_response(status)
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    if length:
        h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def redirect(to: str, status: int = 302) -> Callable:
    return lambda h: send(h, status, headers={"Location": to})


def config_for(server: Hostile, **overrides: object):
    values = dict(api_url=f"{server.base_url}/v1", api_key=TEST_KEY, retry_base_delay=0.01,
                  retry_max_delay=0.05, retry_jitter=0.0, job_timeout=20.0,
                  cancel_interval=0.05, max_download_bytes=CAP)
    values.update(overrides)
    return config_mod.ClientConfig(**values)


def download(config, url: str, dest: Path) -> Path:
    async def go() -> Path:
        async with client_mod.RunwareClient(config) as client:
            return await client.download(url, dest, task_uuid="task-1")

    return asyncio.run(go())


def assert_nothing_written(dest: Path) -> None:
    assert not dest.exists()
    assert not list(dest.parent.glob("*.part")), "a part file was left behind"


# -- redirects -------------------------------------------------------------------------------


def test_redirects_on_the_api_origin_are_followed_and_each_hop_requested(hostile, tmp_path):
    hostile.routes["/a"] = redirect("/b", 301)
    hostile.routes["/b"] = redirect(f"{hostile.base_url}/c", 307)
    hostile.routes["/c"] = lambda h: send(h, 200, BODY)
    path = download(config_for(hostile), f"{hostile.base_url}/a", tmp_path / "r.mp4")
    assert path.read_bytes() == BODY
    assert hostile.paths() == ["/a", "/b", "/c"]
    for _, headers in hostile.requests:
        assert "authorization" not in headers  # the key goes to the API, never to a download
        assert headers.get("accept-encoding") == "identity"


def _targets(bystander: Hostile) -> list[tuple[str, str]]:
    port = bystander.port
    return [
        (f"http://127.0.0.1:{port}/secret", "only https"),  # plain http, another origin
        (f"https://127.0.0.1:{port}/secret", "loopback"),
        (f"https://localhost:{port}/secret", "resolves to"),  # a name: checked on resolve
        (f"https://[::1]:{port}/secret", "loopback"),
        (f"https://[::ffff:127.0.0.1]:{port}/secret", "loopback"),
        (f"https://127.1:{port}/secret", "loopback"),  # legacy IPv4 spellings
        (f"https://2130706433:{port}/secret", "loopback"),
        (f"https://0x7f000001:{port}/secret", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "loopback"),  # cloud metadata
        ("https://10.1.2.3/x.mp4", "private"),
        ("https://192.168.0.1/x.mp4", "private"),
        ("https://[fe80::1]/x.mp4", "link-local"),
        ("https://0.0.0.0/x.mp4", "loopback"),
        ("ftp://example.com/x.mp4", "only https"),
        ("file:///etc/passwd", "only https"),
        ("https:///nohost", "only https"),
    ]


@pytest.mark.parametrize("index", range(16))
def test_redirects_to_internal_or_plain_http_targets_are_refused(hostile, bystander,
                                                                 tmp_path, index):
    target, reason = _targets(bystander)[index]
    hostile.routes["/start"] = redirect("/hop")
    hostile.routes["/hop"] = redirect(target)
    dest = tmp_path / "r.mp4"
    started = time.monotonic()
    with pytest.raises(errors.RefusedDownloadError) as info:
        download(config_for(hostile), f"{hostile.base_url}/start", dest)
    assert time.monotonic() - started < 5  # refused at once, not retried
    assert reason in str(info.value)
    assert "private" in str(info.value) or "only https" in str(info.value)
    assert hostile.paths() == ["/start", "/hop"]
    assert bystander.connections == 0 and bystander.requests == []
    assert_nothing_written(dest)


@pytest.mark.parametrize("index", range(16))
def test_the_same_targets_are_refused_as_the_first_url(bystander, hostile, tmp_path, index):
    target, _ = _targets(bystander)[index]
    with pytest.raises(errors.RefusedDownloadError):
        download(config_for(hostile), target, tmp_path / "r.mp4")
    assert bystander.connections == 0 and hostile.connections == 0


def test_the_api_itself_may_be_on_a_loopback_address(hostile, tmp_path):
    # The local double: http and 127.0.0.1, allowed because RUNWARE_API_URL is there.
    hostile.routes["/r.mp4"] = lambda h: send(h, 200, BODY)
    assert download(config_for(hostile), f"{hostile.base_url}/r.mp4",
                    tmp_path / "r.mp4").read_bytes() == BODY


@pytest.mark.parametrize(("api_host", "url_host"), [("localhost", "127.0.0.1"),
                                                   ("127.0.0.1", "localhost")])
def test_localhost_and_127_0_0_1_are_the_same_api(hostile, tmp_path, api_host, url_host):
    hostile.routes["/r.mp4"] = lambda h: send(h, 200, BODY)
    config = config_for(hostile, api_url=f"http://{api_host}:{hostile.port}/v1")
    url = f"http://{url_host}:{hostile.port}/r.mp4"
    assert download(config, url, tmp_path / "r.mp4").read_bytes() == BODY
    with pytest.raises(errors.RefusedDownloadError):  # another port is not the API
        download(config, f"http://{url_host}:{hostile.port + 1}/r.mp4", tmp_path / "x.mp4")


def test_a_redirect_loop_stops_at_the_hop_limit(hostile, tmp_path):
    hostile.routes["/loop"] = redirect("/loop")
    with pytest.raises(errors.RefusedDownloadError, match="redirected more than 3 times"):
        download(config_for(hostile, max_redirects=3), f"{hostile.base_url}/loop",
                 tmp_path / "r.mp4")
    assert hostile.paths() == ["/loop"] * 4


def test_a_redirect_without_location_is_an_error(hostile, tmp_path):
    hostile.routes["/r"] = lambda h: send(h, 302)
    with pytest.raises(errors.DownloadError, match="HTTP 302"):
        download(config_for(hostile), f"{hostile.base_url}/r", tmp_path / "r.mp4")


# -- bodies ---------------------------------------------------------------------------------


def test_an_announced_body_over_the_cap_is_refused_before_reading(hostile, tmp_path):
    big = b"\0" * (CAP + 1)
    hostile.routes["/big"] = lambda h: send(h, 200, big)
    dest = tmp_path / "r.mp4"
    with pytest.raises(errors.RefusedDownloadError) as info:
        download(config_for(hostile), f"{hostile.base_url}/big", dest)
    text = str(info.value)
    assert "larger than 0 MiB" not in text  # the cap is said in a readable unit
    assert "RUNWARE_MAX_DOWNLOAD_MB" in text and "task-1" in text
    assert len(hostile.requests) == 1  # not retried
    assert_nothing_written(dest)


def test_an_endless_body_without_length_is_stopped_at_the_cap(hostile, tmp_path):
    sent = []

    def endless(h):
        h.send_response(200)
        h.end_headers()  # HTTP/1.0, no Content-Length: the body ends when we close
        chunk = b"x" * 65536
        for _ in range(10_000):  # 640 MiB if nobody stopped reading
            h.wfile.write(chunk)
            sent.append(len(chunk))

    hostile.routes["/endless"] = endless
    dest = tmp_path / "r.mp4"
    with pytest.raises(errors.RefusedDownloadError, match="larger than"):
        download(config_for(hostile, max_download_bytes=CAP), f"{hostile.base_url}/endless",
                 dest)
    assert_nothing_written(dest)
    assert len(hostile.requests) == 1
    time.sleep(0.2)
    assert sum(sent) < 64 * 1024 * 1024  # the client hung up long before the end


def test_a_compressed_body_is_refused_however_small(hostile, tmp_path):
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))  # 20 MiB of zeros in ~20 KiB
    assert len(bomb) < CAP
    hostile.routes["/bomb"] = lambda h: send(h, 200, bomb, {"Content-Encoding": "gzip"})
    dest = tmp_path / "r.mp4"
    with pytest.raises(errors.RefusedDownloadError, match="Content-Encoding: gzip"):
        download(config_for(hostile), f"{hostile.base_url}/bomb", dest)
    assert hostile.requests[0][1]["accept-encoding"] == "identity"
    assert_nothing_written(dest)


def test_a_trickling_body_is_stopped_by_the_time_limit(hostile, tmp_path):
    def trickle(h):
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(2000):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.05)

    hostile.routes["/slow"] = trickle
    dest = tmp_path / "r.mp4"
    started = time.monotonic()
    with pytest.raises(errors.DownloadError, match="did not finish within 2 s") as info:
        download(config_for(hostile, job_timeout=2.0), f"{hostile.base_url}/slow", dest)
    assert time.monotonic() - started < 6
    assert info.value.retryable is False
    assert_nothing_written(dest)


def test_a_body_shorter_than_announced_resumes_with_range(hostile, tmp_path):
    def flaky(h):
        wanted = h.headers.get("Range")
        if not wanted:  # first time: announce everything, send half, hang up
            h.send_response(200)
            h.send_header("Content-Length", str(len(BODY)))
            h.end_headers()
            h.wfile.write(BODY[:40000])
            return
        start = int(wanted.split("=")[1].rstrip("-"))
        send(h, 206, BODY[start:],
             {"Content-Range": f"bytes {start}-{len(BODY) - 1}/{len(BODY)}"})

    hostile.routes["/flaky"] = flaky
    path = download(config_for(hostile), f"{hostile.base_url}/flaky", tmp_path / "r.mp4")
    assert path.read_bytes() == BODY
    assert hostile.requests[1][1]["range"] == "bytes=40000-"


def test_a_resume_from_the_wrong_offset_starts_over_instead_of_corrupting(hostile, tmp_path):
    calls = []

    def liar(h):
        calls.append(h.headers.get("Range"))
        if len(calls) == 1:
            h.send_response(200)
            h.send_header("Content-Length", str(len(BODY)))
            h.end_headers()
            h.wfile.write(BODY[:40000])
        elif h.headers.get("Range"):  # "resumes" from byte 0 while saying 0-
            send(h, 206, BODY, {"Content-Range": f"bytes 0-{len(BODY) - 1}/{len(BODY)}"})
        else:
            send(h, 200, BODY)

    hostile.routes["/liar"] = liar
    path = download(config_for(hostile), f"{hostile.base_url}/liar", tmp_path / "r.mp4")
    assert path.read_bytes() == BODY
    assert calls == [None, "bytes=40000-", None]


def test_a_resumed_total_over_the_cap_is_refused(hostile, tmp_path):
    def grows(h):
        if not h.headers.get("Range"):
            h.send_response(200)
            h.send_header("Content-Length", str(len(BODY)))
            h.end_headers()
            h.wfile.write(BODY[:1000])
            return
        send(h, 206, b"y" * 100, {"Content-Range": f"bytes 1000-1099/{CAP * 4}"})

    hostile.routes["/grows"] = grows
    with pytest.raises(errors.RefusedDownloadError, match="larger than"):
        download(config_for(hostile), f"{hostile.base_url}/grows", tmp_path / "r.mp4")


def test_the_default_cap_is_generous_and_configurable(monkeypatch):
    monkeypatch.delenv("RUNWARE_MAX_DOWNLOAD_MB", raising=False)
    config = config_mod.ClientConfig.from_env()
    assert config.max_download_bytes == 4096 * 1024**2 and not config.max_download_set
    assert config.download_cap() == config_mod.DownloadCap(4096 * 1024**2)
    monkeypatch.setenv("RUNWARE_MAX_DOWNLOAD_MB", "512")
    config = config_mod.ClientConfig.from_env()
    assert config.max_download_bytes == 512 * 1024**2 and config.max_download_set


# -- the cap follows what the job can produce --------------------------------------------------

MB = 1000 * 1000
MIB = 1024 * 1024
# 400 Mbit/s = 50 MB a second, over at least 10 s, plus 64 MiB.
OVI_CAP = 10 * 50 * MB + 64 * MIB


def test_the_cap_is_derived_from_the_video_length(double, fast_config, tmp_path, monkeypatch):
    ovi, short, long = ovi_job(), sync3_job(tmp_path), sync3_job(tmp_path, seconds=30.0)
    assert ovi.result_seconds == 5.0 and short.result_seconds == 2.0
    cap = fast_config.download_cap
    assert cap(ovi.result_seconds) == config_mod.DownloadCap(OVI_CAP, 5.0)  # about 541 MiB
    assert cap(short.result_seconds).limit == OVI_CAP  # short videos: at least 10 s' worth
    assert cap(long.result_seconds) == config_mod.DownloadCap(30 * 50 * MB + 64 * MIB, 30.0)
    # Never above RUNWARE_MAX_DOWNLOAD_MB's default (an hour of video would be 180 GB) ...
    assert cap(3600.0) == config_mod.DownloadCap(4096 * MIB)
    # ... nor for a length that is unknown (a job recovered by its taskUUID) or unreadable.
    for seconds in (None, 0.0, float("nan"), float("inf"), -1.0):
        assert cap(seconds) == config_mod.DownloadCap(4096 * MIB)
    # Set, RUNWARE_MAX_DOWNLOAD_MB is every result's cap: the way to accept a larger one.
    monkeypatch.setenv("RUNWARE_MAX_DOWNLOAD_MB", "2000")
    raised = config_mod.ClientConfig.from_env()
    assert raised.download_cap(5.0) == config_mod.DownloadCap(2000 * MIB)
    monkeypatch.setenv("RUNWARE_MAX_DOWNLOAD_MB", "100")
    assert config_mod.ClientConfig.from_env().download_cap(5.0).limit == 100 * MIB


def sync3_job(tmp_path: Path, seconds: float = 2.0):
    """A sync-3 job whose input video lasts ``seconds`` (as its headers say)."""
    from conftest import sync3_request

    video = write_mp4(tmp_path / "v.mp4", frames=24, fps=12)
    audio = write_wav(tmp_path / "a.wav", seconds=1.0)
    facts = tasks_mod.VideoFacts(96, 64, 12.0, int(seconds * 12), seconds)
    return tasks_mod.prepare_sync3(sync3_request(
        video_source=video, video_mime="video/mp4", video=facts, audio_source=audio,
        audio_mime="audio/wav"))


class HostileFiles:
    """Makes the double's result downloads (GET /files/...) answer like a hostile server:
    each queued writer answers one download (``keep``: every download from then on)."""

    def __init__(self, monkeypatch) -> None:
        self.queue: list[Callable[[http.server.BaseHTTPRequestHandler], None]] = []
        self.keep: Callable[[http.server.BaseHTTPRequestHandler], None] | None = None
        self.sent: list[int] = []
        original = server_mod._Handler._serve_file
        outer = self

        def serve(handler, head: bool) -> None:
            writer = outer.queue.pop(0) if outer.queue else outer.keep
            if head or writer is None or not handler.path.startswith("/files/"):
                original(handler, head)
                return
            handler.close_connection = True
            try:
                writer(handler)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up: what these tests want

        monkeypatch.setattr(server_mod._Handler, "_serve_file", serve)

    def announce(self, length: int, send: int = 65536) -> Callable:
        """Announce ``length`` bytes, send ``send`` of them, hang up."""
        def writer(h) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "video/mp4")
            h.send_header("Content-Length", str(length))
            h.end_headers()
            h.wfile.write(b"\0" * send)
            self.sent.append(send)
        return writer

    def endless(self, h) -> None:
        """No Content-Length: the body ends when the server closes, which it never does."""
        h.send_response(200)
        h.send_header("Content-Type", "video/mp4")
        h.send_header("Connection", "close")
        h.end_headers()
        chunk = b"\0" * 65536
        for _ in range(4096):  # 256 MiB if nobody stopped reading
            h.wfile.write(chunk)
            self.sent.append(len(chunk))


@pytest.fixture
def hostile_files(double, monkeypatch) -> HostileFiles:
    return HostileFiles(monkeypatch)


def no_result_files(cache) -> bool:
    folder = cache.results_folder()
    return not [p for p in folder.iterdir() if p.name != ".gitkeep"] if folder.exists() \
        else True


def test_an_ovi_result_announcing_600_mb_is_refused_then_collected_after_raising_the_cap(
        double, fast_config, hostile_files, tmp_path, monkeypatch):
    monkeypatch.delenv("RUNWARE_MAX_DOWNLOAD_MB", raising=False)
    cache = cache_mod.ResultCache(tmp_path / "cache")
    hostile_files.queue.append(hostile_files.announce(600 * MB))
    started = time.monotonic()
    with pytest.raises(errors.RefusedDownloadError) as info:
        run(ovi_job(), fast_config, cache)
    assert time.monotonic() - started < 10
    err, text = info.value, str(info.value)
    # The cap, why, the paid job and how to raise it.
    assert "larger than 541 MiB (572 MiB announced)" in text
    assert "expected for a 5 s video" in text and "400 Mbit/s" in text
    assert err.task_uuid and err.task_uuid in text and "paid" in text
    assert "RUNWARE_MAX_DOWNLOAD_MB" in text and "more than 541" in text
    assert hostile_files.sent == [65536]  # refused on the announced length, not retried
    assert no_result_files(cache)
    # The paid job stays in the journal: nothing lost, nothing to pay again.
    pending = journaled(cache, ovi_job(), fast_config)
    assert pending is not None and pending.task_uuid == err.task_uuid
    assert pending.status == store_mod.UNKNOWN
    assert accepted(double) == 1

    # Queued again unchanged: refused again (the same cap), still not paid again.
    hostile_files.queue.append(hostile_files.announce(600 * MB))
    with pytest.raises(errors.RefusedDownloadError):
        run(ovi_job(), fast_config, cache_mod.ResultCache(cache.root))
    assert accepted(double) == 1

    # The user raises the setting (and restarts): the same job is collected, not re-paid.
    monkeypatch.setenv("RUNWARE_MAX_DOWNLOAD_MB", "1024")
    env = config_mod.ClientConfig.from_env()
    raised = dataclasses.replace(fast_config, max_download_bytes=env.max_download_bytes,
                                 max_download_set=env.max_download_set)
    results = run(ovi_job(), raised, cache_mod.ResultCache(cache.root))
    assert accepted(double) == 1
    assert results[0].result.task_uuid == err.task_uuid and results[0].path.is_file()
    assert journaled(cache, ovi_job(), raised) is None


def test_an_ovi_body_without_length_is_stopped_at_the_derived_cap(
        double, fast_config, hostile_files, tmp_path, monkeypatch):
    # The same rule, scaled down so the test streams megabytes, not half a gigabyte:
    # 10 s at 0.8 Mbit/s (1 MB) + 1 MiB = about 2 MiB for Ovi's 5 s clip.
    monkeypatch.setattr(config_mod, "RESULT_MAX_MBIT_S", 0.8)
    monkeypatch.setattr(config_mod, "RESULT_MARGIN_MB", 1.0)
    cap = fast_config.download_cap(5.0)
    assert cap.limit == 1 * MB + MIB
    cache = cache_mod.ResultCache(tmp_path / "cache")
    hostile_files.queue.append(hostile_files.endless)
    with pytest.raises(errors.RefusedDownloadError, match="larger than 1.95 MiB, the most "
                       "expected for a 5 s video") as info:
        run(ovi_job(), fast_config, cache)
    time.sleep(0.3)
    assert cap.limit <= sum(hostile_files.sent) < cap.limit + 16 * MIB  # hung up at the cap
    assert no_result_files(cache)
    assert not list(cache.results_folder().glob(".*.part"))
    assert journaled(cache, ovi_job(), fast_config).task_uuid == info.value.task_uuid
    # With the setting raised, a re-queue collects the real result without paying again.
    raised = dataclasses.replace(fast_config, max_download_set=True)
    assert run(ovi_job(), raised, cache)[0].path.is_file() and accepted(double) == 1


def test_a_sync3_job_of_a_long_video_gets_a_proportionally_larger_cap(
        double, fast_config, hostile_files, tmp_path):
    # 1000 MiB announced: over the cap of a 2 s video (541 MiB), under a 30 s one's (1495).
    hostile_files.keep = hostile_files.announce(1000 * MIB, send=1024)
    short_cache = cache_mod.ResultCache(tmp_path / "short")
    with pytest.raises(errors.RefusedDownloadError, match="expected for a 2 s video"):
        run(sync3_job(tmp_path), fast_config, short_cache)
    long_cache = cache_mod.ResultCache(tmp_path / "long")
    with pytest.raises(errors.DownloadError) as info:
        run(sync3_job(tmp_path, seconds=30.0), fast_config, long_cache)
    # Accepted by the cap: it failed only because the server hung up after 1 KiB.
    assert not isinstance(info.value, errors.RefusedDownloadError)
    assert "larger than" not in str(info.value) and "1024" in str(info.value)
    assert accepted(double) == 2 and no_result_files(long_cache)


# -- the resolver guard ------------------------------------------------------------------------


class FakeResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": a, "port": port, "family": family, "proto": 0,
                 "flags": 0} for a in self.answers[host]]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("host", "port", "addresses", "allowed"),
    [
        ("cdn.example", 443, ["93.184.216.34"], True),
        ("cdn.example", 443, ["2606:2800:220:1:248:1893:25c8:1946"], True),
        ("rebind.example", 443, ["93.184.216.34", "127.0.0.1"], False),  # any bad one
        ("lan.example", 443, ["192.168.1.10"], False),
        ("meta.example", 443, ["169.254.169.254"], False),
        ("cgnat.example", 443, ["100.64.0.1"], False),
        ("v6local.example", 443, ["fd00::1"], False),
        ("mapped.example", 443, ["::ffff:10.0.0.1"], False),
        ("api.local", 8765, ["127.0.0.1"], True),  # the configured API itself
        ("API.LOCAL.", 8765, ["127.0.0.1"], True),
        ("api.local", 8766, ["127.0.0.1"], False),  # the API's host, another port
        ("localhost", 8765, ["127.0.0.1"], False),  # loopback, but not the API's place
    ],
)
def test_names_resolving_to_internal_addresses_are_refused(host, port, addresses, allowed):
    async def go():
        resolver = client_mod._PublicOnlyResolver([("api.local", 8765)])
        await resolver.close()
        resolver._inner = FakeResolver({host: addresses})
        return await resolver.resolve(host, port)

    if allowed:
        assert [r["host"] for r in asyncio.run(go())] == addresses
    else:
        with pytest.raises(errors.RefusedDownloadError, match="resolves to"):
            asyncio.run(go())


def test_the_resolver_treats_localhost_as_a_loopback_api():
    async def go(host, port):
        resolver = client_mod._PublicOnlyResolver([("127.0.0.1", 8765)])
        await resolver.close()
        resolver._inner = FakeResolver({host: ["127.0.0.1"]})
        return await resolver.resolve(host, port)

    assert asyncio.run(go("localhost", 8765))
    with pytest.raises(errors.RefusedDownloadError):
        asyncio.run(go("localhost", 8766))
    with pytest.raises(errors.RefusedDownloadError):
        asyncio.run(go("evil.example", 8765))  # rebinding to the API's address: refused


# -- part files: never a name someone planted ----------------------------------------------


def planted_names(monkeypatch, *tokens: str) -> None:
    """The next temp names drawn use ``tokens`` (then random ones again)."""
    queue = list(tokens)
    real = files_mod._token
    monkeypatch.setattr(files_mod, "_token", lambda: queue.pop(0) if queue else real())


@pytest.mark.skipif(os.name != "posix", reason="symlinks need privileges on Windows")
def test_a_planted_folder_or_link_at_the_part_name_is_skipped(hostile, tmp_path, monkeypatch):
    folder = tmp_path / "results"
    folder.mkdir()
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    pid = os.getpid()
    planted_dir = folder / f".r.mp4.{pid}.aaaaaaaa.part"
    planted_dir.mkdir()
    (planted_dir / "inside.txt").write_text("keep")
    planted_link = folder / f".r.mp4.{pid}.bbbbbbbb.part"
    planted_link.symlink_to(victim)
    planted_names(monkeypatch, "aaaaaaaa", "bbbbbbbb")
    hostile.routes["/r.mp4"] = lambda h: send(h, 200, BODY)
    path = download(config_for(hostile), f"{hostile.base_url}/r.mp4", folder / "r.mp4")
    assert path.read_bytes() == BODY and not path.is_symlink()
    assert victim.read_bytes() == b"precious"  # never written through the link
    assert planted_link.is_symlink() and planted_dir.is_dir()  # both left alone
    assert (planted_dir / "inside.txt").read_text() == "keep"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["r.mp4", planted_dir.name, planted_link.name])


def test_more_taken_names_than_tries_is_an_error_not_a_loop(hostile, tmp_path, monkeypatch):
    folder = tmp_path / "results"
    folder.mkdir()
    planted = folder / f".r.mp4.{os.getpid()}.cccccccc.part"
    planted.mkdir()
    monkeypatch.setattr(files_mod, "_token", lambda: "cccccccc")
    hostile.routes["/r.mp4"] = lambda h: send(h, 200, BODY)
    with pytest.raises((FileExistsError, PermissionError)):  # Windows: "access denied"
        download(config_for(hostile), f"{hostile.base_url}/r.mp4", folder / "r.mp4")
    assert hostile.requests == [] and planted.is_dir() and not (folder / "r.mp4").exists()


@pytest.mark.skipif(os.name != "posix", reason="symlinks need privileges on Windows")
def test_a_resume_writes_only_the_part_file_it_created(hostile, tmp_path):
    """Someone swaps the part file for a link between two attempts: the resume keeps
    writing the file it created (never the link's target), and nothing is kept."""
    folder = tmp_path / "results"
    folder.mkdir()
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")

    def flaky(h):
        wanted = h.headers.get("Range")
        if not wanted:
            h.send_response(200)
            h.send_header("Content-Length", str(len(BODY)))
            h.end_headers()
            h.wfile.write(BODY[:40000])
            h.wfile.flush()
            time.sleep(0.3)  # the client has written them
            (part,) = folder.glob(".r.mp4.*.part")
            part.unlink()
            part.symlink_to(victim)
            return
        start = int(wanted.split("=")[1].rstrip("-"))
        send(h, 206, BODY[start:],
             {"Content-Range": f"bytes {start}-{len(BODY) - 1}/{len(BODY)}"})

    hostile.routes["/flaky"] = flaky
    with pytest.raises(errors.DownloadError, match="temp file was replaced") as info:
        download(config_for(hostile), f"{hostile.base_url}/flaky", folder / "r.mp4")
    assert info.value.retryable is False
    assert hostile.requests[1][1]["range"] == "bytes=40000-"  # it did resume
    assert victim.read_bytes() == b"precious"
    assert not (folder / "r.mp4").exists()
