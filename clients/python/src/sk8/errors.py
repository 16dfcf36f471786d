"""Typed errors: every refusal of the sk8 API as an exception carrying sk8's own ``code``,
``message`` and ``field`` (the JSON path of the request field at fault), so callers can catch
``sk8.NotFound`` or read ``err.field`` instead of parsing text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional


@dataclass(frozen=True)
class FieldError:
    """One broken rule of an invalid request."""

    field: Optional[str]
    message: str


class Sk8Error(Exception):
    """An error from sk8 or on the way to it.

    ``code`` is sk8's stable machine-readable code (``invalid_request``, ``not_found``,
    ``conflict``, …), ``status`` the HTTP status (``None`` when sk8 was never reached),
    ``field`` the request field at fault and ``errors`` every broken rule.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: Optional[int] = None,
        field: Optional[str] = None,
        errors: Optional[List[FieldError]] = None,
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.status = status
        self.field = field
        self.errors: List[FieldError] = errors or []


class InvalidRequest(Sk8Error):
    """400: the request breaks a rule; ``field`` and ``errors`` say which."""


class Unauthenticated(Sk8Error):
    """401: no token, or one sk8 does not accept (set ``SK8_TOKEN``)."""


class Forbidden(Sk8Error):
    """403: the caller's role may not do this in that team."""


class NotFound(Sk8Error):
    """404: no such job or session, or not one the caller may see."""


class Conflict(Sk8Error):
    """409: the resource's state forbids it (cancel a finished job, a reused idempotency key
    with another body)."""


class PayloadTooLarge(Sk8Error):
    """413: the body is larger than the server's ``http.maxBodyBytes``."""


class UnsupportedMediaType(Sk8Error):
    """415: a body that is neither JSON nor YAML."""


class TooManyRequests(Sk8Error):
    """429: the team's rate limit or cap; ``retry_after`` is in seconds when sk8 said."""

    retry_after: Optional[float] = None


class Unavailable(Sk8Error):
    """503: sk8 cannot serve now (its store is down, a backend is unreachable); retry."""


class ServerError(Sk8Error):
    """500 or another status sk8 does not document: a bug, logged by the server."""


class Unreachable(Sk8Error):
    """sk8 did not answer at all (wrong ``SK8_SERVER``, daemon down, network)."""


class ConfigError(Sk8Error):
    """The client is missing a setting (team, env, server) or has a wrong one."""


class SessionFailed(Sk8Error):
    """The session's server could not start (``reason`` says why) or was deleted."""


class RunFailed(Sk8Error):
    """A job ended FAILED or CANCELLED while ``Run.wait(check=True)`` waited for it.

    ``state``, ``failure_class`` (``application``, ``out_of_memory``, ``timeout``, …),
    ``reason`` and ``links`` (``logs``, ``events``, ``sparkUi``, ``historyServer``) come from
    the job.
    """

    def __init__(self, job: Mapping[str, Any], links: Mapping[str, Any]) -> None:
        self.job_id: str = job["id"]
        self.state: str = job["state"]
        self.failure_class: Optional[str] = job.get("failureClass")
        self.reason: Optional[str] = job.get("failureReason")
        self.links: Dict[str, Any] = dict(links)
        what = f"job {self.job_id} ended {self.state}"
        if self.failure_class:
            what += f" ({self.failure_class})"
        if self.reason:
            what += f": {self.reason}"
        super().__init__("run_" + self.state.lower(), what)


class WaitTimeout(Sk8Error):
    """A wait for a session or job ran past its ``timeout``."""


_BY_STATUS = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: TooManyRequests,
    503: Unavailable,
}


def from_response(status: int, body: Any, retry_after: Optional[str] = None) -> Sk8Error:
    """The typed error for an error answer of sk8 (``{"error": {code, message, field,
    errors}}``); a body of another shape still gives an error of the status's type."""
    detail = body.get("error") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        detail = {"code": f"http_{status}", "message": str(body)[:500] or f"HTTP {status}"}
    errors = [
        FieldError(field=e.get("field"), message=str(e.get("message", "")))
        for e in detail.get("errors") or []
        if isinstance(e, dict)
    ]
    kind = _BY_STATUS.get(status, ServerError)
    err = kind(
        str(detail.get("code", f"http_{status}")),
        str(detail.get("message", "")),
        status=status,
        field=detail.get("field"),
        errors=errors,
    )
    if isinstance(err, TooManyRequests) and retry_after:
        try:
            err.retry_after = float(retry_after)
        except ValueError:
            pass
    return err
