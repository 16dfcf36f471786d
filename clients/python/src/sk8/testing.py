"""Spark tests without a cluster or containers: :class:`LocalSk8` starts a throwaway ``sk8
serve`` (SQLite in a temp dir, sessions served by Sail) and the pytest fixtures hand out a
``SparkSession`` on it.

Fixtures (this module is a pytest plugin, registered by the package):

- ``sk8_local``: the running :class:`LocalSk8`, one per test session.
- ``sk8_spark``: a ``SparkSession`` on a Sail session of that daemon, one per test session.

Needs the ``sk8`` binary (``SK8_BIN`` or on PATH) and Sail's ``sail`` (``SK8_SAIL``, on PATH or
beside this Python: ``pip install sk8[testing]``). Jobs run too when ``SPARK_HOME`` is set.
"""

from __future__ import annotations

import collections
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Deque, Dict, Iterator, Optional

import pytest

from .client import Client
from .config import Settings

#: How long ``sk8 serve`` may take to say it is ready.
START_TIMEOUT = 60.0
#: How long it may take to stop (it stops its Spark servers first).
STOP_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1


class LocalSk8:
    """A private ``sk8 serve`` on loopback ports, stopped (with its servers) by :meth:`stop`,
    by leaving the ``with`` block, or when this Python process dies."""

    def __init__(self, *, team: str = "test", env: str = "dev",
                 config: Optional[Dict[str, Any]] = None) -> None:
        self.team, self.env = team, env
        self._dir = tempfile.TemporaryDirectory(prefix="sk8-testing-")
        self._log: Deque[str] = collections.deque(maxlen=500)
        self._extra = config or {}
        self._process: Optional[subprocess.Popen] = None
        self.server = ""
        self.gateway = ""

    def __enter__(self) -> "LocalSk8":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def settings(self) -> Settings:
        return Settings(server=self.server, team=self.team, env=self.env)

    @property
    def client(self) -> Client:
        return Client(self.settings)

    def logs(self) -> str:
        """The daemon's last log lines (JSON), for a failing test's message."""
        return "\n".join(self._log)

    def start(self) -> None:
        config_path = Path(self._dir.name) / "sk8.yaml"
        config_path.write_text(json.dumps(self._config()))
        # sk8 serve reads SK8_* overrides: the caller's client settings must not reach it.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SK8_") and k != "DATABASE_URL"}
        self._process = subprocess.Popen(
            [_sk8_binary(), "serve", "--config", str(config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env, preexec_fn=_die_with_parent,
        )
        ready = threading.Event()
        threading.Thread(target=self._read_log, args=(ready,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.05):
            if self._process.poll() is not None:
                raise RuntimeError(f"sk8 serve exited ({self._process.returncode}):\n{self.logs()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sk8 serve was not ready within {START_TIMEOUT:.0f}s:\n{self.logs()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # SIGTERM: sk8 stops the Sail servers it started
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._dir.cleanup()

    def spark(self, name: str = "test", **spec: Any) -> Any:
        """A SparkSession on the session ``name`` of this daemon (created and READY)."""
        from pyspark.sql import SparkSession

        from .session import remote_url, session_spec, start_session

        body = session_spec(self.team, self.env, name, **spec)
        session = start_session(self.client, body, progress=False)
        return SparkSession.builder.remote(remote_url(session["connectionString"], None, False)).create()

    def _config(self) -> Dict[str, Any]:
        local: Dict[str, Any] = {"connectServer": "sail", "sail": _sail_binary()}
        config: Dict[str, Any] = {
            "dataDir": self._dir.name,
            "http": {"addr": "127.0.0.1:0"},
            "gateway": {"addr": "127.0.0.1:0"},
            "backend": {"kind": "local", "local": local},
            "reconciler": {"intervalMs": 200},
            "log": {"format": "json"},
        }
        _merge(config, self._extra)
        return config

    def _read_log(self, ready: threading.Event) -> None:
        assert self._process is not None and self._process.stderr is not None
        for raw in self._process.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            self._log.append(line)
            if ready.is_set():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if str(event.get("message", "")).startswith("sk8 is ready"):
                self.server = f"http://{event['addr']}"
                self.gateway = event["grpc_addr"]
                ready.set()


def _merge(base: Dict[str, Any], patch: Dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _sk8_binary() -> str:
    found = os.environ.get("SK8_BIN") or shutil.which("sk8")
    if not found:
        raise RuntimeError("sk8.testing needs the sk8 binary: set SK8_BIN or put sk8 on PATH")
    return found


def _sail_binary() -> str:
    beside = Path(sys.executable).parent / "sail"
    found = os.environ.get("SK8_SAIL") or shutil.which("sail") or (str(beside) if beside.exists() else None)
    if not found:
        raise RuntimeError("sk8.testing needs Sail: pip install 'sk8[testing]' (pysail), or set SK8_SAIL")
    return found


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@pytest.fixture(scope="session")
def sk8_local() -> Iterator[LocalSk8]:
    """A throwaway local sk8 with Sail sessions, for the whole test session."""
    with LocalSk8() as local:
        yield local


@pytest.fixture(scope="session")
def sk8_spark(sk8_local: LocalSk8) -> Iterator[Any]:
    """A SparkSession on a Sail session of :func:`sk8_local`."""
    spark = sk8_local.spark()
    try:
        yield spark
    finally:
        spark.stop()
