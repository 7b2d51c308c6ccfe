"""Typed errors raised by the Runware core.

Every error carries what a user (or a bug report) needs: the Runware error code, the
message, the request parameter, the taskUUID and the HTTP status. None of them ever
carries the API key: every field of every error is scrubbed when the error is built (a
server or proxy may echo the key back, whole, in part or in another letter case), and a
filter on the pack's logger scrubs every log record the same way.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .logs import CHILD_LOGGERS, LOGGER_NAME


class RunwareError(Exception):
    """Base class: a failure talking to Runware, or a job that did not succeed."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        parameter: str | None = None,
        task_uuid: str | None = None,
        task_type: str | None = None,
        http_status: int | None = None,
        hint: str | None = None,
    ) -> None:
        # Scrubbed here, where every error is built: whatever a server echoed into a
        # message, code or parameter, no rendering of this error can carry a key.
        self.message = scrub(message)
        self.code = _scrubbed(code)
        self.parameter = _scrubbed(parameter)
        self.task_uuid = _scrubbed(task_uuid)
        self.task_type = _scrubbed(task_type)
        self.http_status = http_status
        self.hint = _scrubbed(hint)
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message.rstrip(".") + "."]
        details = []
        if self.code:
            details.append(f"code {self.code}")
        if self.parameter:
            details.append(f"parameter {self.parameter}")
        if self.task_uuid:
            details.append(f"taskUUID {self.task_uuid}")
        if self.http_status:
            details.append(f"HTTP {self.http_status}")
        if details:
            parts.append("(" + ", ".join(details) + ")")
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "message": self.message,
            "code": self.code,
            "parameter": self.parameter,
            "taskUUID": self.task_uuid,
            "httpStatus": self.http_status,
        }


class MissingApiKeyError(RunwareError):
    """No key configured: raised before any upload or paid call."""


class AuthError(RunwareError):
    """The key was refused (401/403, invalidApiKey, missingApiKey)."""


class InsufficientCreditsError(RunwareError):
    """HTTP 402 / insufficientCredits."""


class ValidationError(RunwareError):
    """Runware (or our pre-flight check) refused a parameter."""


class RateLimitError(RunwareError):
    retryable = True


class ServerError(RunwareError):
    """5xx, or a connection that failed: transient, retried with backoff."""

    retryable = True


class TaskFailedError(RunwareError):
    """The job was accepted but ended in error (inferenceError, content policy, ...)."""

    # Results of a multi-result job that finished before another one failed (paid).
    partial_results: list = []


class TaskNotFoundError(TaskFailedError):
    """taskNotFound / taskExpired: Runware no longer knows the task."""


class JobTimeoutError(RunwareError):
    """The overall time limit for a job passed (the job may still finish on Runware)."""


class CancelledError(RunwareError):
    """The user interrupted the run (the cancel hook asked us to stop)."""


class DownloadError(RunwareError):
    """A result could not be downloaded completely."""

    retryable = True


class RefusedDownloadError(DownloadError, ValidationError):
    """A result URL (or a redirect) points where the pack does not download from, or the
    answer is not a plain file of a sane size: not retried."""

    retryable = False


class SettingError(RunwareError, ValueError):
    """A ``RUNWARE_*`` setting has a value the pack cannot use (names it and the form)."""


class KeyFileError(MissingApiKeyError):
    """The key file exists but cannot be read as a key (raised only when a key is needed)."""


class EndpointError(RunwareError):
    """Something other than Runware's API answered (a proxy or firewall page, a wrong
    RUNWARE_API_URL, an oversized body): not transient, and no evidence about any job."""


_AUTH_CODES = {"invalidApiKey", "missingApiKey", "unauthorized", "forbidden"}
_CREDIT_CODES = {"insufficientCredits", "insufficientBalance"}
_RATE_CODES = {"rateLimitExceeded", "inferenceRateLimitExceeded", "providerRateLimitExceeded"}
_SERVER_CODES = {
    "internalServerError",
    "serviceUnavailable",
    "timeoutProvider",
    "providerTimeout",
    "providerError",
}
_NOT_FOUND_CODES = {"taskNotFound", "taskExpired"}

_HINTS = {
    AuthError: "Runware refused the API key. Set a valid key (https://my.runware.ai/keys) in "
    "ComfyUI's Settings -> Runware -> API key, or in the RUNWARE_API_KEY environment "
    "variable (which takes precedence).",
    InsufficientCreditsError: "Top up your Runware balance at https://my.runware.ai/wallet.",
    RateLimitError: "Runware is rate-limiting this key; wait a moment and queue again.",
    ServerError: "Runware had a temporary problem; queue again in a moment.",
    ValidationError: "Fix the parameter named above and queue again.",
    TaskFailedError: "The job failed on Runware: read the message, change the inputs if it "
    "points at them, and try again.",
    TaskNotFoundError: "Runware no longer has this task: queue the graph again to start a "
    "new job.",
}


def error_class_for(code: str | None, http_status: int | None) -> type[RunwareError]:
    """Map a Runware error code (preferred) or HTTP status to an error class."""
    if code in _AUTH_CODES:
        return AuthError
    if code in _CREDIT_CODES:
        return InsufficientCreditsError
    if code in _RATE_CODES:
        return RateLimitError
    if code in _SERVER_CODES:
        return ServerError
    if code in _NOT_FOUND_CODES:
        return TaskNotFoundError
    if http_status in (401, 403):
        return AuthError
    if http_status == 402:
        return InsufficientCreditsError
    if http_status in (408, 429):
        return RateLimitError if http_status == 429 else ServerError
    if http_status is not None and http_status >= 500:
        return ServerError
    if http_status in (400, 404, 422):
        return ValidationError
    return TaskFailedError


def error_from_item(
    item: dict[str, Any], http_status: int | None = None, *, secret: str | None = None
) -> RunwareError:
    """Build a typed error from one Runware error object (either shape)."""
    nested = item.get("error") if isinstance(item.get("error"), dict) else None
    src = nested or item
    code = _as_text(src.get("code") or item.get("code"))
    message = _as_text(src.get("message") or item.get("message")) or "Runware reported an error"
    parameter = src.get("parameter") or item.get("parameter")
    if isinstance(parameter, list):
        parameter = ", ".join(str(p) for p in parameter)
    allowed = src.get("allowedValues")
    if allowed:
        message = f"{message} (allowed: {allowed})"
    provider = src.get("responseContent")
    if provider and isinstance(provider, str):
        message = f"{message} Provider said: {provider[:300]}"
    cls = error_class_for(code, http_status)

    def clean(value: Any) -> str | None:
        text = _as_text(value)
        return scrub(text, secret) if text else text

    return cls(
        scrub(message, secret),
        code=clean(code),
        parameter=clean(parameter),
        task_uuid=clean(item.get("taskUUID") or src.get("taskUUID")),
        task_type=clean(item.get("taskType") or src.get("taskType")),
        http_status=http_status,
        hint=_HINTS.get(cls),
    )


# -- secret scrubbing --------------------------------------------------------------------
#
# Keys in use are registered here: a key configured in the environment or the key file
# for the life of the process, a client's key while that client is open. Any run of
# FRAGMENT or more characters of a registered key, in any letter case, is replaced by
# "***". Shorter runs are left: the settings dialog shows the last 4 characters on purpose.

FRAGMENT = 8
MIN_SECRET = 4  # shorter strings are no key; scrubbing them would mangle ordinary text
REDACTED = "***"

# Lower-cases ASCII only, so indices in the text and its lower-cased copy stay aligned
# (str.lower can change the length of some non-ASCII text; keys are ASCII).
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}

_lock = threading.Lock()
_held: dict[str, int] = {}  # key -> number of holders
_permanent: set[str] = set()  # configured keys: scrubbed until the process ends
_grams: dict[str, tuple[int, frozenset[str]]] = {}


def _gram_set(secret: str) -> tuple[int, frozenset[str]]:
    """Every run of FRAGMENT characters of the lower-cased key (the whole of a short one)."""
    low = secret.translate(_ASCII_LOWER)
    size = min(FRAGMENT, len(low))
    return size, frozenset(low[i:i + size] for i in range(len(low) - size + 1))


def remember_secret(secret: str | None) -> None:
    """Scrub ``secret`` from every error and log line until the process ends (a key
    configured in the environment or the key file)."""
    if secret and len(secret) >= MIN_SECRET:
        with _lock:
            _permanent.add(secret)
            _grams.setdefault(secret, _gram_set(secret))


def hold_secret(secret: str | None) -> None:
    """Scrub ``secret`` until a matching :func:`release_secret` (a client's key while the
    client is open, e.g. a key someone pasted into the settings dialog)."""
    if secret and len(secret) >= MIN_SECRET:
        with _lock:
            _held[secret] = _held.get(secret, 0) + 1
            _grams.setdefault(secret, _gram_set(secret))


def release_secret(secret: str | None) -> None:
    if not secret:
        return
    with _lock:
        count = _held.get(secret, 0) - 1
        if count > 0:
            _held[secret] = count
            return
        _held.pop(secret, None)
        if secret not in _permanent:
            _grams.pop(secret, None)


def scrub(text: str, secret: str | None = None) -> str:
    """``text`` without ``secret`` nor any registered key: whole, in part (FRAGMENT or
    more characters in a row) or in another letter case."""
    if not text or not isinstance(text, str):
        return text
    with _lock:
        gram_sets = list(_grams.values())
    if secret and len(secret) >= MIN_SECRET and secret not in _grams:
        gram_sets.append(_gram_set(secret))
    if not gram_sets:
        return text
    low = text.translate(_ASCII_LOWER)
    covered = bytearray(len(text))
    hit = False
    for size, grams in gram_sets:
        for i in range(len(low) - size + 1):
            if low[i:i + size] in grams:
                covered[i:i + size] = b"\x01" * size
                hit = True
    if not hit:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(REDACTED)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _scrubbed(value: str | None) -> str | None:
    return scrub(value) if isinstance(value, str) else value


class SecretFilter(logging.Filter):
    """Scrubs every record of the pack's logger: message, arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        broken = False
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep its parts, scrubbed
            message, broken = f"{record.msg} {record.args!r}", True
        clean = scrub(message)
        if broken or clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install_log_filter(name: str = LOGGER_NAME) -> None:
    """Put a :class:`SecretFilter` on logger ``name`` (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, SecretFilter) for f in logger.filters):
        logger.addFilter(SecretFilter())


# Filters on a logger do not see records of its children: each logger the pack uses.
for _name in (LOGGER_NAME, *(f"{LOGGER_NAME}.{child}" for child in CHILD_LOGGERS)):
    install_log_filter(_name)


def _as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
