"""HTTP routes of the pack, under ``/runware_ovi_sync3/`` (ComfyUI mirrors them at /api).

- ``GET    /runware_ovi_sync3/key``  status: configured, source, last 4 characters (none
  of a key shorter than 12), which file (never its absolute path), why it is unreadable
- ``POST   /runware_ovi_sync3/key``  ``{"key": ...}``: check it with Runware, then store it
- ``DELETE /runware_ovi_sync3/key``  forget the stored key

No route ever returns the key. ComfyUI has no authentication and may listen on the
network, so requests from another origin (a web page the user happens to visit) are
refused, and writes must be JSON (which a plain HTML form cannot send).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from . import host
from .context import key_file
from .runware.client import RunwareClient
from .runware.config import ALLOWED_HOSTS_ENV, ClientConfig, env_host_list
from .runware.errors import AuthError, MissingApiKeyError, RunwareError, SettingError
from .runware.keystore import KeyStore, clean_key, is_plausible_key
from .runware.logs import get_logger

log = get_logger()

PREFIX = "/runware_ovi_sync3"
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _host_allowed(host_header: str) -> bool:
    """Refuse DNS rebinding: a web site whose name resolves to this machine sends its own
    name as Host. Allow loopback names, IP literals (how a LAN/server install is usually
    reached) and names listed in RUNWARE_ALLOWED_HOSTS (comma-separated)."""
    allowed = env_host_list(ALLOWED_HOSTS_ENV)  # a bad value is an error, not "allow all"
    try:
        name = urlsplit(f"//{host_header}").hostname or ""
    except ValueError:  # e.g. an unclosed "[" in the Host header
        return False
    if name in ("localhost", "127.0.0.1", "::1") or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name.lower() in allowed


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    if not _host_allowed(request.host):
        return False
    if not origin:
        return True  # not a browser cross-origin request (curl, scripts, same-origin GET)
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == request.host.lower()


def _guarded(handler: Handler, *, write: bool) -> Handler:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            same_origin = _same_origin(request)
        except SettingError as exc:
            return web.json_response({"error": str(exc)}, status=500)
        if not same_origin:
            return web.json_response(
                {"error": "request refused: it comes from another site, or this server is "
                          f"reached by a name not listed in {ALLOWED_HOSTS_ENV}"}, status=403)
        if write and request.content_type != "application/json" and request.method == "POST":
            return web.json_response({"error": "send JSON"}, status=415)
        return await handler(request)

    return wrapped


async def validate_key(key: str) -> tuple[bool | None, str]:
    """One cheap authenticated request (a ping). True/False, or None when unreachable."""
    config = ClientConfig.from_env(api_key=key, max_retries=1, read_timeout=20.0)
    try:
        async with RunwareClient(config) as client:
            reply = await client.post([{"taskType": "ping", "ping": True}], label="key check")
            client.raise_errors(reply)
    except AuthError:
        return False, "Runware refused this key."
    except MissingApiKeyError:
        return False, "The key is empty."
    except RunwareError as exc:
        # Reached Runware but the ping itself was not understood, or no connection:
        # keep the key; a real job will tell.
        return None, f"Could not check the key with Runware ({exc.code or 'no answer'})."
    return True, "Runware accepted the key."


def make_handlers(store_for: Callable[[], KeyStore]) -> list[tuple[str, str, Handler]]:
    async def status(request: web.Request) -> web.Response:
        return web.json_response(store_for().status().as_dict())

    async def set_key(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "send JSON like {\"key\": \"...\"}"},
                                     status=400)
        raw = body.get("key") if isinstance(body, dict) else None
        key = clean_key(raw) if isinstance(raw, str) else ""
        if not key:
            return web.json_response({"error": "The key is empty."}, status=400)
        if not is_plausible_key(key):
            return web.json_response(
                {"error": "That is not a Runware key: it has characters a key cannot have."},
                status=400)
        try:
            valid, message = await validate_key(key)
        except SettingError as exc:  # e.g. a bad RUNWARE_API_URL: say which and why
            return web.json_response({"error": str(exc)}, status=500)
        if valid is False:
            return web.json_response({"error": message}, status=401)
        store = store_for()
        try:
            store.save(key)
        except OSError as exc:
            log.error("Could not save the Runware API key to %s: %s", store.path, exc)
            return web.json_response(
                {"error": f"Could not save the key ({exc.strerror or type(exc).__name__}); "
                          "the key saved before, if any, is unchanged."}, status=500)
        log.info("Runware API key saved to %s", store.path)
        return web.json_response({**store.status().as_dict(), "validated": bool(valid),
                                  "message": message})

    async def delete_key(request: web.Request) -> web.Response:
        store = store_for()
        try:
            removed = store.delete()
        except OSError as exc:
            return web.json_response({"error": f"Could not remove the key: {exc}"}, status=500)
        if removed:
            log.info("Runware API key file %s removed", store.path)
        return web.json_response(store.status().as_dict())

    return [
        ("GET", f"{PREFIX}/key", _guarded(status, write=False)),
        ("POST", f"{PREFIX}/key", _guarded(set_key, write=True)),
        ("DELETE", f"{PREFIX}/key", _guarded(delete_key, write=True)),
    ]


def register() -> None:
    """Add the routes to ComfyUI's server, when there is one."""
    host.add_routes(make_handlers(lambda: KeyStore(key_file())))
