"""Client settings: where Runware is, the key, timeouts, retry and polling budgets."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import MissingApiKeyError

DEFAULT_API_URL = "https://api.runware.ai/v1"
API_URL_ENV = "RUNWARE_API_URL"
API_KEY_ENV = "RUNWARE_API_KEY"
JOB_TIMEOUT_ENV = "RUNWARE_JOB_TIMEOUT"

MISSING_KEY_HINT = (
    "Set your Runware API key (create one at https://my.runware.ai/keys) in ComfyUI's "
    "Settings -> Runware -> API key, or in the {env} environment variable before starting "
    "ComfyUI{file}."
)


def key_hint(key_file: str | None) -> str:
    where = f", or put it alone in the file {key_file}" if key_file else ""
    return MISSING_KEY_HINT.format(env=API_KEY_ENV, file=where)


@dataclass(frozen=True)
class ClientConfig:
    api_url: str = DEFAULT_API_URL
    # repr=False: a config printed in a log or traceback never shows the key.
    api_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    # Per socket read; uploads of large files are streamed, so this is per chunk.
    read_timeout: float = 120.0
    # Transient failures (408/429/5xx/connection): at most this many retries per call.
    max_retries: int = 4
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0
    retry_jitter: float = 1.0
    # getResponse cadence: first poll after poll_initial, growing x poll_growth up to
    # poll_max (official SDKs: 1 s, then x1.5 up to 10 s).
    poll_initial: float = 1.0
    poll_growth: float = 1.5
    poll_max: float = 10.0
    # Overall limit for one job from submission to the last result, and how long one
    # poll (with its own retries) may run past it.
    job_timeout: float = 20 * 60.0
    poll_grace: float = 15.0
    # How often every wait checks the cancel hook.
    cancel_interval: float = 0.2
    download_chunk: int = 1 << 20
    # Where a key from the settings dialog is kept (for error messages and reloads).
    key_file: str | None = None
    key_source: str | None = None  # "environment" | "file"

    @classmethod
    def from_env(cls, key_file: str | os.PathLike[str] | None = None,
                 **overrides: object) -> ClientConfig:
        """Settings from the environment; the key from RUNWARE_API_KEY, else ``key_file``."""
        from .keystore import KeyStore  # keystore imports this module

        key, source = (None, None)
        if key_file is not None:
            key, source = KeyStore(Path(key_file)).resolve()
        else:
            key = (os.environ.get(API_KEY_ENV) or "").strip() or None
            source = "environment" if key else None
        values: dict[str, object] = {
            "api_url": os.environ.get(API_URL_ENV) or DEFAULT_API_URL,
            "api_key": key,
            "key_source": source,
            "key_file": str(key_file) if key_file is not None else None,
        }
        timeout = os.environ.get(JOB_TIMEOUT_ENV)
        if timeout:
            try:
                seconds = float(timeout)
            except ValueError:
                seconds = math.nan
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(
                    f"{JOB_TIMEOUT_ENV} must be a positive number of seconds, got {timeout!r}"
                )
            values["job_timeout"] = seconds
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def require_key(self) -> str:
        """The key, or a clear error saying how to set it (raised before any traffic)."""
        if not self.api_key:
            raise MissingApiKeyError("No Runware API key is configured",
                                     hint=key_hint(self.key_file))
        if not (self.api_key.isascii() and self.api_key.isprintable()):
            # It goes into an HTTP header; say so clearly (never echoing the key).
            raise MissingApiKeyError(
                f"The Runware API key (from {self.key_source or 'the settings'}) contains "
                "characters a key cannot have", hint=key_hint(self.key_file))
        return self.api_key

    @property
    def api_origin(self) -> tuple[str, str, int | None]:
        parts = urlsplit(self.api_url)
        return parts.scheme, (parts.hostname or ""), parts.port
