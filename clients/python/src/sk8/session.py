"""``sk8.connect()``: a SparkSession on an sk8 session in one line. It creates the named session
of a team environment (or finds it, and starts it again when it had stopped), waits until it is
READY while saying what it waits for, and opens the Spark Connect client on the gateway's
``sc://`` URL with the token and TLS set the way pyspark needs them."""

from __future__ import annotations

import sys
import time
import urllib.parse
from typing import Any, Dict, Mapping, Optional, TextIO, Union

from .client import Client
from .config import Settings
from .errors import SessionFailed, WaitTimeout

#: The session name when none is given.
DEFAULT_NAME = "notebook"
#: How long ``connect`` waits for READY by default: an Apache Spark server is a JVM.
DEFAULT_READY_TIMEOUT = 600.0

#: Named sizes for ``size=``: driver and executors of a session.
SIZES: Dict[str, Dict[str, Any]] = {
    "small": {"driver": {"cores": 1, "memory": "1g"},
              "executor": {"cores": 1, "memory": "1g", "instances": 1}},
    "medium": {"driver": {"cores": 1, "memory": "2g"},
               "executor": {"cores": 2, "memory": "4g", "instances": 2}},
    "large": {"driver": {"cores": 2, "memory": "4g"},
              "executor": {"cores": 4, "memory": "8g", "instances": 4}},
}

Size = Union[str, Mapping[str, Any]]


def session_spec(
    team: str,
    env: str,
    name: str,
    *,
    size: Optional[Size] = None,
    conf: Optional[Mapping[str, Any]] = None,
    idle_timeout: Optional[int] = None,
) -> Dict[str, Any]:
    """The SessionSpec that ``connect`` posts. ``size`` is a name of :data:`SIZES` or a
    mapping with ``driver``/``executor`` (and ``dynamicAllocation``) like the API's."""
    spec: Dict[str, Any] = {"team": team, "env": env, "name": name}
    if size is not None:
        if isinstance(size, str):
            if size not in SIZES:
                raise ValueError(f"size must be one of {sorted(SIZES)} or a mapping, not {size!r}")
            spec.update(SIZES[size])
        else:
            spec.update(size)
    if conf:
        spec["sparkConf"] = {str(k): str(v) for k, v in conf.items()}
    if idle_timeout is not None:
        spec["idleTimeoutSeconds"] = int(idle_timeout)
    return spec


def start_session(
    client: Client,
    spec: Mapping[str, Any],
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
    progress: Union[bool, TextIO] = True,
) -> Dict[str, Any]:
    """Creates or resumes the session of ``spec`` and returns it once READY."""
    _, session = client.request("POST", "/v1/sessions", spec)
    return wait_ready(client, session["id"], timeout=timeout, progress=progress)


def wait_ready(
    client: Client,
    session_id: str,
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
    progress: Union[bool, TextIO] = True,
) -> Dict[str, Any]:
    """Polls the session until READY; FAILED or deleted raises SessionFailed."""
    out = _progress_stream(progress)
    start = time.monotonic()
    last_state = None
    pause = 0.1
    while True:
        _, session = client.request("GET", f"/v1/sessions/{session_id}")
        state = session["state"]
        if state != last_state and out is not None:
            print(
                f"sk8: session {session['team']}/{session['env']}/{session['name']} is {state} "
                f"({time.monotonic() - start:.0f}s)",
                file=out,
                flush=True,
            )
            last_state = state
        if state == "READY":
            return session
        if state == "FAILED" or session.get("deletedAt"):
            raise SessionFailed(
                "session_failed",
                f"session {session_id} is {state}: {session.get('reason') or 'no reason given'}",
            )
        if time.monotonic() - start > timeout:
            raise WaitTimeout(
                "wait_timeout",
                f"session {session_id} was not READY within {timeout:.0f}s (it is {state})",
            )
        time.sleep(pause)
        pause = min(pause * 1.5, 2.0)


def remote_url(connection_string: str, token: Optional[str], tls: bool) -> str:
    """The ``sc://`` URL for pyspark. pyspark sends a ``token`` only over TLS, except to the
    host ``localhost`` (local channel credentials): so with TLS the URL says ``use_ssl=true``,
    and without it a loopback gateway is addressed as ``localhost``. A token for a remote
    gateway without TLS would never be sent, so that is refused."""
    url = connection_string
    if tls:
        url += ";use_ssl=true"
    if token:
        if not tls:
            url = _as_localhost(url)
        url += ";token=" + urllib.parse.quote(token, safe="")
    return url


def _as_localhost(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    if host == "localhost":
        return url
    if host not in ("127.0.0.1", "::1"):
        raise SessionFailed(
            "tls_required",
            f"the gateway at {host} has no TLS: pyspark would not send the token there. Give "
            "the gateway a certificate (gateway.tls) and set SK8_TLS=true",
            field="tls",
        )
    return url.replace(parsed.netloc, f"localhost:{parsed.port}", 1)


def connect(
    team: Optional[str] = None,
    env: Optional[str] = None,
    name: Optional[str] = None,
    *,
    size: Optional[Size] = None,
    conf: Optional[Mapping[str, Any]] = None,
    idle_timeout: Optional[int] = None,
    server: Optional[str] = None,
    token: Optional[str] = None,
    tls: Optional[bool] = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
    progress: Union[bool, TextIO] = True,
) -> Any:
    """A ``SparkSession`` on the sk8 session ``team/env/name``, created or resumed.

    Unset arguments come from ``SK8_SERVER``, ``SK8_TOKEN``, ``SK8_TEAM``, ``SK8_ENV``,
    ``SK8_TLS`` and the config file (see :mod:`sk8.config`); ``name`` defaults to
    ``SK8_SESSION`` or ``notebook``. ``size``, ``conf`` and ``idle_timeout`` apply when the
    session is created. Progress lines go to stderr (``progress=False`` silences them).
    """
    from pyspark.sql import SparkSession  # the Spark Connect client: pyspark-client

    settings = Settings.load(server=server, token=token, team=team, env=env, tls=tls)
    spec = session_spec(
        settings.require("team"),
        settings.require("env"),
        name or _default_name(),
        size=size,
        conf=conf,
        idle_timeout=idle_timeout,
    )
    session = start_session(Client(settings), spec, timeout=timeout, progress=progress)
    url = remote_url(session["connectionString"], settings.token, settings.tls)
    return SparkSession.builder.remote(url).create()


def _default_name() -> str:
    import os

    return os.environ.get("SK8_SESSION") or DEFAULT_NAME


def _progress_stream(progress: Union[bool, TextIO]) -> Optional[TextIO]:
    if progress is True:
        return sys.stderr
    if progress is False:
        return None
    return progress
