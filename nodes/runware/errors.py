"""Typed errors raised by the Runware core.

Every error carries what a user (or a bug report) needs: the Runware error code, the
message, the request parameter, the taskUUID and the HTTP status. None of them ever
carries the API key: messages are built from server answers, which we scrub anyway.
"""

from __future__ import annotations

from typing import Any


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
        self.message = message
        self.code = code
        self.parameter = parameter
        self.task_uuid = task_uuid
        self.task_type = task_type
        self.http_status = http_status
        self.hint = hint
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
    return cls(
        scrub(message, secret),
        code=code,
        parameter=_as_text(parameter),
        task_uuid=_as_text(item.get("taskUUID") or src.get("taskUUID")),
        task_type=_as_text(item.get("taskType") or src.get("taskType")),
        http_status=http_status,
        hint=_HINTS.get(cls),
    )


def scrub(text: str, secret: str | None) -> str:
    """Remove a secret from text that may echo it back (a server quoting our header)."""
    if secret and text:
        return text.replace(secret, "***")
    return text


def _as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
