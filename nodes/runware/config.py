"""Client settings: where Runware is, the key, timeouts, retry and polling budgets.

Every ``RUNWARE_*`` environment variable is read through one of the small readers below,
which validate the value when it is read: a value the pack cannot use (``20GB``, ``abc``,
``nan``, 0 where that makes no sense, a URL without scheme or host) is a
:class:`SettingError` naming the variable and the form it takes, never a silent default.
An unset or empty variable means "use the default".
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import KeyFileError, MissingApiKeyError, SettingError, remember_secret
from .keystore import API_KEY_ENV, KEY_FILE_PLACE, KeyStore, clean_key

DEFAULT_API_URL = "https://api.runware.ai/v1"
API_URL_ENV = "RUNWARE_API_URL"
JOB_TIMEOUT_ENV = "RUNWARE_JOB_TIMEOUT"
MAX_DOWNLOAD_MB_ENV = "RUNWARE_MAX_DOWNLOAD_MB"
CACHE_DIR_ENV = "RUNWARE_CACHE_DIR"
CACHE_MAX_GB_ENV = "RUNWARE_CACHE_MAX_GB"
CACHE_MAX_DAYS_ENV = "RUNWARE_CACHE_MAX_DAYS"
ALLOWED_HOSTS_ENV = "RUNWARE_ALLOWED_HOSTS"
DAILY_LIMIT_ENV = "RUNWARE_DAILY_LIMIT_USD"
SYNC3_MODEL_ENV = "RUNWARE_SYNC3_MODEL"

DEFAULT_JOB_TIMEOUT = 20 * 60.0
# No result is ever larger than this (unless RUNWARE_MAX_DOWNLOAD_MB says otherwise): 4 GiB
# holds a 10-minute 1080p clip at 50 Mbit/s or well over an hour at a typical 8 Mbit/s.
DEFAULT_MAX_DOWNLOAD_MB = 4096.0
# Below that, each result may be only as large as its video's length allows (a hostile
# server or proxy cannot make a 5 s clip fill gigabytes): RESULT_MAX_MBIT_S, far above any
# delivery bitrate (H.264 / VP9 at 4K 60 fps and top quality, ProRes 422 HQ 1080p60 in a
# MOV), over at least RESULT_MIN_SECONDS, plus a margin for the container and the audio.
RESULT_MAX_MBIT_S = 400.0
RESULT_MIN_SECONDS = 10.0
RESULT_MARGIN_MB = 64.0
DEFAULT_CACHE_MAX_GB = 20.0
DEFAULT_CACHE_MAX_DAYS = 30.0

MISSING_KEY_HINT = (
    "Set your Runware API key (create one at https://my.runware.ai/keys) in ComfyUI's "
    "Settings -> Runware -> API key, or in the {env} environment variable before starting "
    "ComfyUI{file}."
)


def key_hint(key_file: str | None) -> str:
    # Names the file, not its absolute path: errors reach whoever uses the page.
    where = f", or put it alone in {KEY_FILE_PLACE}" if key_file else ""
    return MISSING_KEY_HINT.format(env=API_KEY_ENV, file=where)


# -- validated readers of RUNWARE_* variables ---------------------------------------------


def env_text(name: str) -> str | None:
    """The variable's value without surrounding blanks; None when unset or empty."""
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def setting_error(name: str, value: str, form: str) -> SettingError:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return SettingError(
        f"The setting {name}={shown!r} is not valid: it must be {form}",
        hint=f"Fix {name} where ComfyUI is started (or unset it to use the default), "
        "then restart ComfyUI.",
    )


def env_positive_float(name: str, default: float, *, unit: str, example: str,
                       maximum: float | None = None) -> float:
    """A finite number > 0 (and <= ``maximum``), written without a unit."""
    value = env_text(name)
    if value is None:
        return default
    form = f"a number of {unit} greater than 0, without a unit (like {example})"
    if maximum is not None:
        form += f", at most {maximum:.0f}"
    try:
        number = float(value)
    except ValueError:
        raise setting_error(name, value, form) from None
    if not (math.isfinite(number) and number > 0) or (maximum is not None
                                                      and number > maximum):
        raise setting_error(name, value, form)
    return number


def env_limit_usd(name: str, maximum: float = 1e6) -> float | None:
    """An amount of US dollars >= 0 (0 = no limit); None when unset or 0."""
    value = env_text(name)
    if value is None:
        return None
    form = (f"an amount of US dollars without a unit or $ sign (like 5 or 12.50), 0 for "
            f"no limit, at most {maximum:.0f}")
    try:
        number = float(value)
    except ValueError:
        raise setting_error(name, value, form) from None
    if not (math.isfinite(number) and 0 <= number <= maximum):
        raise setting_error(name, value, form)
    return number or None


def env_url(name: str, default: str) -> str:
    """An http(s) URL with a host (and, if given, a valid port)."""
    value = env_text(name)
    if value is None:
        return default
    form = "an http:// or https:// URL with a host name, like https://api.runware.ai/v1"
    if any(c.isspace() or not c.isprintable() for c in value):
        raise setting_error(name, value, form)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise setting_error(name, value, form) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise setting_error(name, value, form)
    return value


def env_model_id(name: str) -> str | None:
    """A Runware model id (AIR), like ``sync:lipsync@3``: provider:name@version."""
    value = env_text(name)
    if value is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*:[\w.-]+@[\w.-]+", value):
        raise setting_error(name, value, "a Runware model id like sync:lipsync@3 or sync:3@0")
    return value


def env_directory(name: str) -> Path | None:
    """A folder path (created later if missing); None when unset."""
    value = env_text(name)
    if value is None:
        return None
    form = "the path of a folder"
    if "\x00" in value:
        raise setting_error(name, value, form)
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise setting_error(name, value, form + f" ({path.name} exists and is a file)")
    return path


_HOST_NAME = re.compile(r"^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
                        r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?$")


def env_host_list(name: str) -> frozenset[str]:
    """Comma-separated host names (no scheme, port or path), lower-cased."""
    value = env_text(name)
    if value is None:
        return frozenset()
    form = ("host names separated by commas, without http:// or a port, "
            "like mybox.lan,comfy.example.com")
    hosts = {h.strip().lower() for h in value.split(",")} - {""}
    for host in hosts:
        if not _HOST_NAME.match(host):
            raise setting_error(name, value, form)
    return frozenset(hosts)


@dataclass(frozen=True)
class CacheSettings:
    root: Path
    max_bytes: int
    max_age: float  # seconds


def cache_settings_from_env(default_root: Path) -> CacheSettings:
    """RUNWARE_CACHE_DIR / _MAX_GB / _MAX_DAYS, validated (see the README's table)."""
    root = env_directory(CACHE_DIR_ENV) or Path(default_root)
    max_gb = env_positive_float(CACHE_MAX_GB_ENV, DEFAULT_CACHE_MAX_GB, unit="gigabytes",
                                example="20", maximum=1e6)
    max_days = env_positive_float(CACHE_MAX_DAYS_ENV, DEFAULT_CACHE_MAX_DAYS, unit="days",
                                  example="30", maximum=36500)
    return CacheSettings(root, int(max_gb * 1024**3), max_days * 86400.0)


# -- the client's settings ----------------------------------------------------------------


@dataclass(frozen=True)
class DownloadCap:
    """The largest body one result download accepts, and why."""

    limit: int
    # The length of the video the cap was derived from; None: the setting itself.
    seconds: float | None = None

    def reason(self) -> str:
        if self.seconds is None:
            return f"the most one result may be ({MAX_DOWNLOAD_MB_ENV})"
        return (f"the most expected for a {self.seconds:.3g} s video (at most "
                f"{RESULT_MAX_MBIT_S:.0f} Mbit/s over at least {RESULT_MIN_SECONDS:.0f} s, "
                f"plus {RESULT_MARGIN_MB:.0f} MiB)")


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
    job_timeout: float = DEFAULT_JOB_TIMEOUT
    poll_grace: float = 15.0
    # How often every wait checks the cancel hook.
    cancel_interval: float = 0.2
    download_chunk: int = 1 << 20
    # Largest result body accepted (RUNWARE_MAX_DOWNLOAD_MB), and redirects followed.
    max_download_bytes: int = int(DEFAULT_MAX_DOWNLOAD_MB * 1024**2)
    # True when RUNWARE_MAX_DOWNLOAD_MB is set: then it is every result's cap, also above
    # the per-video one (see download_cap).
    max_download_set: bool = False
    max_redirects: int = 5
    # Where a key from the settings dialog is kept (for error messages and reloads).
    key_file: str | None = None
    key_source: str | None = None  # "environment" | "file"
    # Why the key file could not be read: raised by require_key, i.e. only when a request
    # needs the key (a cached result is served without it).
    key_error: str | None = None
    # RUNWARE_SYNC3_MODEL: the sync-3 model id to send, as is (no fallback to the other).
    sync3_model: str | None = None

    @classmethod
    def from_env(cls, key_file: str | os.PathLike[str] | None = None,
                 **overrides: object) -> ClientConfig:
        """Settings from the environment; the key from RUNWARE_API_KEY, else ``key_file``."""
        key, source, key_error = None, None, None
        if "api_key" not in overrides:
            try:
                if key_file is not None:
                    key, source = KeyStore(Path(key_file)).resolve()
                else:
                    key = clean_key(os.environ.get(API_KEY_ENV, "")) or None
                    source = "environment" if key else None
            except KeyFileError as exc:
                key_error = exc.message
        remember_secret(key)
        values: dict[str, object] = {
            "api_url": env_url(API_URL_ENV, DEFAULT_API_URL),
            "api_key": key,
            "key_source": source,
            "key_error": key_error,
            "key_file": str(key_file) if key_file is not None else None,
            "job_timeout": env_positive_float(JOB_TIMEOUT_ENV, DEFAULT_JOB_TIMEOUT,
                                              unit="seconds", example="1200",
                                              maximum=7 * 86400),
            "max_download_bytes": int(env_positive_float(
                MAX_DOWNLOAD_MB_ENV, DEFAULT_MAX_DOWNLOAD_MB, unit="megabytes (MiB)",
                example="4096", maximum=1e7) * 1024**2),
            "max_download_set": env_text(MAX_DOWNLOAD_MB_ENV) is not None,
            "sync3_model": env_model_id(SYNC3_MODEL_ENV),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def require_key(self) -> str:
        """The key, or a clear error saying how to set it (raised before any traffic)."""
        if not self.api_key and self.key_error:
            raise KeyFileError(self.key_error, hint=key_hint(self.key_file))
        if not self.api_key:
            raise MissingApiKeyError("No Runware API key is configured",
                                     hint=key_hint(self.key_file))
        if not (self.api_key.isascii() and self.api_key.isprintable()):
            # It goes into an HTTP header; say so clearly (never echoing the key).
            where = {"environment": f"the {API_KEY_ENV} environment variable",
                     "file": KEY_FILE_PLACE}.get(self.key_source or "", "the settings")
            raise MissingApiKeyError(
                f"The Runware API key (from {where}) contains characters a key cannot have",
                hint=key_hint(self.key_file))
        return self.api_key

    def download_cap(self, seconds: float | None = None) -> DownloadCap:
        """The most one result of a ``seconds``-long video may weigh: ``seconds`` (at least
        RESULT_MIN_SECONDS) at RESULT_MAX_MBIT_S plus RESULT_MARGIN_MB, never above
        max_download_bytes. RUNWARE_MAX_DOWNLOAD_MB, when set, is the cap itself (the way to
        accept a larger result), and so is max_download_bytes for an unknown length (a job
        recovered by its taskUUID)."""
        if self.max_download_set or seconds is None or not math.isfinite(seconds) \
                or seconds <= 0:
            return DownloadCap(self.max_download_bytes)
        derived = int(max(seconds, RESULT_MIN_SECONDS) * RESULT_MAX_MBIT_S * 1e6 / 8
                      + RESULT_MARGIN_MB * 1024**2)
        if derived >= self.max_download_bytes:
            return DownloadCap(self.max_download_bytes)
        return DownloadCap(derived, seconds)

    @property
    def api_origin(self) -> tuple[str, str, int | None]:
        parts = urlsplit(self.api_url)
        return parts.scheme, (parts.hostname or ""), parts.port
