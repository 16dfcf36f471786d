"""``sk8.submit()`` and ``Run``: a batch job posted the way a pipeline posts it, then followed:
``wait`` (with progress), ``status``, ``logs``, ``events``, ``cancel``, and when it fails its
failure class, reason and links."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, TextIO, Union

import yaml

from .client import Client
from .config import Settings
from .errors import InvalidRequest, RunFailed, WaitTimeout

#: The states a job does not leave.
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
_DEP_LISTS = ("jars", "pyFiles", "files")

SpecSource = Union[str, "os.PathLike[str]", Mapping[str, Any], None]


class Run:
    """One submitted job. ``job`` is its last known state (the API's ``Job``)."""

    def __init__(self, client: Client, job: Mapping[str, Any], created: bool = True) -> None:
        self.client = client
        self.job: Dict[str, Any] = dict(job)
        #: False when an earlier submission with the same idempotency key made this job.
        self.created = created
        self._links: Dict[str, Any] = {}

    @property
    def id(self) -> str:
        return str(self.job["id"])

    @property
    def state(self) -> str:
        return str(self.job["state"])

    @property
    def failure_class(self) -> Optional[str]:
        """Why it failed: ``application``, ``out_of_memory``, ``timeout``, ``configuration``,
        ``scheduling`` or ``infrastructure``; ``None`` unless FAILED."""
        return self.job.get("failureClass")

    @property
    def failure_reason(self) -> Optional[str]:
        return self.job.get("failureReason")

    @property
    def links(self) -> Dict[str, Any]:
        """``logs``, ``events``, and once known ``sparkUi`` and ``historyServer``."""
        return self._links

    def status(self) -> str:
        """Reads the job again and returns its state."""
        _, detail = self.client.request("GET", f"/v1/jobs/{self.id}")
        self._links = detail.pop("links", {}) or {}
        self.job = detail
        return self.state

    def wait(
        self,
        progress: Union[bool, TextIO] = True,
        *,
        timeout: Optional[float] = None,
        check: bool = True,
    ) -> str:
        """Waits until the job ends and returns its state. With ``check`` (the default) a job
        that ended FAILED or CANCELLED raises :class:`~sk8.errors.RunFailed` carrying the
        failure class, reason and links. ``progress`` prints each state change to stderr."""
        out = sys.stderr if progress is True else (progress or None)
        start = time.monotonic()
        seen = None
        pause = 0.2
        while True:
            state = self.status()
            if state != seen and out is not None:
                print(f"sk8: job {self.job['name']} ({self.id}) is {state} "
                      f"({time.monotonic() - start:.0f}s)", file=out, flush=True)
                seen = state
            if state in TERMINAL:
                break
            if timeout is not None and time.monotonic() - start > timeout:
                raise WaitTimeout("wait_timeout",
                                  f"job {self.id} did not end within {timeout:.0f}s (it is {state})")
            time.sleep(pause)
            pause = min(pause * 1.5, 2.0)
        if check and state != "SUCCEEDED":
            raise RunFailed(self.job, self._links)
        return state

    def logs(self, follow: bool = False, attempt: Optional[int] = None) -> Union[str, Iterator[str]]:
        """The driver log of the latest attempt (or ``attempt``): the whole text, or with
        ``follow`` an iterator of lines that ends when the attempt does."""
        query = [("follow", "true" if follow else "false")]
        if attempt is not None:
            query.append(("attempt", str(attempt)))
        lines = self.client.stream(f"/v1/jobs/{self.id}/logs", query)
        return lines if follow else "".join(lines)

    def events(self) -> List[Dict[str, Any]]:
        """The job's state transitions, oldest first."""
        _, events = self.client.request("GET", f"/v1/jobs/{self.id}/events")
        return list(events)

    def cancel(self) -> str:
        """Asks sk8 to cancel the job (a no-op when it is already cancelling); returns the state."""
        _, job = self.client.request("POST", f"/v1/jobs/{self.id}/cancel")
        self.job = job
        return self.state

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.job.get('name')!r}, state={self.state!r})"


def submit(
    spec: SpecSource = None,
    idempotency_key: Optional[str] = None,
    *,
    server: Optional[str] = None,
    token: Optional[str] = None,
    **fields: Any,
) -> Run:
    """Submits a job and returns its :class:`Run`.

    ``spec`` is a JobSpec mapping, or the path of a YAML/JSON manifest (relative files in it
    resolve against its folder, as with ``sk8 submit``), or nothing; keyword ``fields``
    (camelCase or snake_case: ``main_application_file=…``) are laid over it, and ``team``/``env``
    default to ``SK8_TEAM``/``SK8_ENV``. The same ``idempotency_key`` with the same body gives
    the same job, so a retried pipeline step never runs it twice.
    """
    settings = Settings.load(server=server, token=token)
    body = job_spec(spec, fields, settings)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    client = Client(settings)
    status, job = client.request("POST", "/v1/jobs", body, headers=headers)
    return Run(client, job, created=status == 201)


def dry_run(
    spec: SpecSource = None,
    *,
    server: Optional[str] = None,
    token: Optional[str] = None,
    **fields: Any,
) -> Dict[str, Any]:
    """What sk8 would run for this submission, without submitting it.

    Takes what :func:`submit` takes (but no idempotency key: nothing is created) and returns
    the daemon's answer: ``spec``, the effective JobSpec (remembered sizes and sizing advice
    applied), and when they apply ``sizedFrom`` and ``sizing``. An invalid spec raises the
    same typed error a submit would.
    """
    settings = Settings.load(server=server, token=token)
    body = job_spec(spec, fields, settings)
    _, effective = Client(settings).request(
        "POST", "/v1/jobs", body, query=[("dryRun", "true")]
    )
    return effective


def job_spec(spec: SpecSource, fields: Mapping[str, Any], settings: Settings) -> Dict[str, Any]:
    """The JobSpec ``submit`` posts (see there)."""
    if spec is None:
        body: Dict[str, Any] = {}
    elif isinstance(spec, Mapping):
        body = dict(spec)
    else:
        body = _read_manifest(Path(spec))
    body.update({_camel(k): v for k, v in fields.items()})
    for key in ("team", "env"):
        if key not in body and getattr(settings, key):
            body[key] = getattr(settings, key)
    return body


def _read_manifest(path: Path) -> Dict[str, Any]:
    try:
        body = yaml.safe_load(path.read_text())
    except OSError as err:
        raise InvalidRequest("invalid_request", f"cannot read {path}: {err}", field="spec") from err
    except yaml.YAMLError as err:
        raise InvalidRequest("invalid_request", f"{path} is not YAML or JSON: {err}",
                             field="spec") from err
    if not isinstance(body, dict):
        raise InvalidRequest("invalid_request", f"{path} must hold a JobSpec mapping", field="spec")
    base = path.resolve().parent
    if "mainApplicationFile" in body:
        body["mainApplicationFile"] = _resolve(body["mainApplicationFile"], base, "mainApplicationFile")
    for name in _DEP_LISTS:
        items = (body.get("deps") or {}).get(name)
        if isinstance(items, list):
            body["deps"][name] = [_resolve(v, base, f"deps.{name}[{i}]") for i, v in enumerate(items)]
    return body


def _resolve(value: Any, base: Path, field: str) -> Any:
    """A plain relative path becomes ``local://<absolute path>`` and must exist; URIs and
    absolute paths are kept."""
    if not isinstance(value, str) or not value or "://" in value or value.startswith("/"):
        return value
    # Normalised: sk8 refuses `..` segments in file references.
    absolute = Path(os.path.normpath(base / value))
    if not absolute.exists():
        raise InvalidRequest("invalid_request",
                             f"{value}: no such file (looked for {absolute}; relative paths are "
                             "relative to the manifest)", field=field)
    return f"local://{absolute}"


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
