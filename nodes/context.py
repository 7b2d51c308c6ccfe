"""Where the pack's settings and result cache come from inside ComfyUI: the key file in
ComfyUI's user directory, the client settings from the environment, and one result cache
(hence one store connection) per set of cache settings. The node runner, the panel and
the routes all take them from here.
"""

from __future__ import annotations

from pathlib import Path

from . import host
from .runware.cache import ResultCache, cache_settings_from_env
from .runware.config import ClientConfig
from .runware.keystore import KEY_FILE_NAME


def key_file() -> Path:
    """Where the settings dialog stores the key: ComfyUI's user directory."""
    return host.user_directory() / KEY_FILE_NAME


def client_config() -> ClientConfig:
    """Settings from the environment; the key from RUNWARE_API_KEY, else the key file."""
    return ClientConfig.from_env(key_file=key_file())


_CACHES: dict[str, ResultCache] = {}


def result_cache() -> ResultCache:
    """The on-disk result cache: RUNWARE_CACHE_DIR, else <ComfyUI output>/runware (one
    object, hence one store connection, per set of settings)."""
    settings = cache_settings_from_env(host.output_directory() / "runware")
    key = repr(sorted((k, str(v)) for k, v in settings.items()))
    if key not in _CACHES:
        _CACHES[key] = ResultCache(**settings)
    return _CACHES[key]
