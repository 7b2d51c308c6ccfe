"""HTTPS_PROXY / HTTP_PROXY / NO_PROXY, through a real proxy process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import PACK, TEST_KEY, pack_module

client_mod = pack_module("nodes.runware.client")
config_mod = pack_module("nodes.runware.config")
errors = pack_module("nodes.runware.errors")
RunwareOvi = PACK.NODE_CLASS_MAPPINGS["RunwareOvi"]

# A tiny HTTP proxy: absolute-form requests are forwarded (HTTP_PROXY for http:// URLs),
# CONNECT opens a tunnel (HTTPS_PROXY for https:// URLs). Every request line is logged.
PROXY = textwrap.dedent(
    """
    import socket, socketserver, sys, threading
    from urllib.parse import urlsplit
    LOG = sys.argv[1]
    lock = threading.Lock()

    def log(line):
        with lock, open(LOG, "a") as fh:
            fh.write(line + "\\n")

    def pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            conn = self.request
            head = b""
            while b"\\r\\n\\r\\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, rest = head.split(b"\\r\\n\\r\\n", 1)
            lines = head.decode("latin-1").split("\\r\\n")
            method, target, version = lines[0].split(" ", 2)
            log(f"{method} {target}")
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                try:
                    up = socket.create_connection((host, int(port)), timeout=5)
                except OSError:
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\\r\\nContent-Length: 0\\r\\n\\r\\n")
                    return
                conn.sendall(b"HTTP/1.1 200 Connection established\\r\\n\\r\\n")
                if rest:
                    up.sendall(rest)
            else:
                url = urlsplit(target)
                up = socket.create_connection((url.hostname, url.port or 80), timeout=5)
                path = url.path + ("?" + url.query if url.query else "")
                keep = [h for h in lines[1:] if not h.lower().startswith(
                    ("proxy-connection:", "connection:", "keep-alive:"))]
                up.sendall(f"{method} {path} {version}\\r\\n".encode("latin-1")
                           + "\\r\\n".join(keep + ["Connection: close"]).encode("latin-1")
                           + b"\\r\\n\\r\\n" + rest)
            back = threading.Thread(target=pipe, args=(up, conn), daemon=True)
            back.start()
            pipe(conn, up)
            back.join()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    print("PORT", server.server_address[1], flush=True)
    server.serve_forever()
    """
)


@pytest.fixture
def proxy(tmp_path):
    """(proxy URL, function returning the request lines it has seen so far)."""
    log = tmp_path / "proxy.log"
    log.touch()
    proc = subprocess.Popen([sys.executable, "-c", PROXY, str(log)], stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}", lambda: log.read_text().splitlines()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def generate():
    args = dict(prompt="A robot says <S>hello<E>.", seed=11, steps=30, fps=12,
                video_cfg_scale=5.0, audio_cfg_scale=4.0)
    return asyncio.run(RunwareOvi().generate(**args))["result"]


def test_http_proxy_carries_every_request(env, proxy, no_proxy_env):
    url, seen = proxy
    no_proxy_env.setenv("HTTP_PROXY", url)
    video, images, audio, fps, info = generate()
    assert images[0].shape[0] == 60 and json.loads(info[0])["cost"] > 0
    lines = seen()
    base = env.base_url
    origin = base.rsplit("/v1", 1)[0]
    assert f"POST {base}" in lines  # submission and polls
    assert any(line.startswith(f"GET {origin}/files/") for line in lines)  # the download
    assert all(origin in line for line in lines)


def test_no_proxy_bypasses_the_proxy(env, proxy, no_proxy_env):
    url, seen = proxy
    no_proxy_env.setenv("HTTP_PROXY", url)
    no_proxy_env.setenv("NO_PROXY", "127.0.0.1,localhost")
    generate()
    assert seen() == []


def test_https_proxy_is_asked_to_connect(proxy, no_proxy_env, tmp_path):
    """An https:// API goes through the proxy's CONNECT tunnel (here to a name that does
    not exist, so the proxy answers 502): the proxy is used, and the error is a clear
    connection error after bounded retries, not a hang."""
    url, seen = proxy
    no_proxy_env.setenv("HTTPS_PROXY", url)
    config = config_mod.ClientConfig(
        api_url="https://api.runware.invalid/v1", api_key=TEST_KEY, retry_base_delay=0.02,
        retry_max_delay=0.05, retry_jitter=0.0, poll_initial=0.05, poll_max=0.1,
        job_timeout=10.0, cancel_interval=0.05,
    )

    async def run():
        async with client_mod.RunwareClient(config) as client:
            return await client.upload_media(b"\x00" * 16, "audio/wav")

    with pytest.raises(errors.RunwareError) as exc:
        asyncio.run(asyncio.wait_for(run(), 60))
    assert TEST_KEY not in str(exc.value)
    assert seen() and all(line == "CONNECT api.runware.invalid:443" for line in seen())


def test_readme_documents_proxies():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"):
        assert name in readme


def test_a_download_behind_a_proxy_still_refuses_internal_names(proxy, no_proxy_env, tmp_path):
    """Through a proxy the proxy resolves names, so the pack resolves the result's host
    itself first: a name of this machine is refused and the proxy is never asked."""
    url, seen = proxy
    no_proxy_env.setenv("HTTPS_PROXY", url)
    config = config_mod.ClientConfig(api_url="https://api.runware.invalid/v1",
                                     api_key=TEST_KEY, max_retries=0)

    async def run():
        async with client_mod.RunwareClient(config) as client:
            await client.download("https://localhost:9/result.mp4", tmp_path / "r.mp4")

    with pytest.raises(errors.RefusedDownloadError) as exc:
        asyncio.run(asyncio.wait_for(run(), 30))
    assert "loopback, private or link-local" in str(exc.value)
    assert seen() == []


def test_a_download_goes_through_the_https_proxy(proxy, no_proxy_env, tmp_path):
    """A public result host is fetched through the proxy's CONNECT tunnel (here the name
    does not exist, so the proxy answers 502 and the download fails clearly)."""
    url, seen = proxy
    no_proxy_env.setenv("HTTPS_PROXY", url)
    config = config_mod.ClientConfig(api_url="https://api.runware.invalid/v1",
                                     api_key=TEST_KEY, max_retries=0)

    async def run():
        async with client_mod.RunwareClient(config) as client:
            await client.download("https://cdn.runware.invalid/r.mp4", tmp_path / "r.mp4")

    with pytest.raises(errors.DownloadError):
        asyncio.run(asyncio.wait_for(run(), 30))
    assert seen() == ["CONNECT cdn.runware.invalid:443"]
