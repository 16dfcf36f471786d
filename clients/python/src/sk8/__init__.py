"""sk8 from Python: ``spark = sk8.connect()`` for a SparkSession on a team's sk8 session, and
``run = sk8.submit("job.yaml"); run.wait()`` for batch jobs (``sk8.dry_run("job.yaml")`` shows
what would run without submitting). Settings come from the arguments,
``SK8_SERVER``/``SK8_TOKEN``/``SK8_TEAM``/``SK8_ENV``/``SK8_TLS`` and ``~/.config/sk8/config.yaml``.
Every refusal of the API is a typed :mod:`sk8.errors` exception with sk8's code, message and
field."""

from .client import Client
from .config import Settings
from .errors import (
    ConfigError,
    Conflict,
    FieldError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RunFailed,
    ServerError,
    SessionFailed,
    Sk8Error,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    Unreachable,
    UnsupportedMediaType,
    WaitTimeout,
)
from .run import Run, dry_run, submit
from .session import connect

__all__ = [
    "Client", "Settings", "Run", "connect", "dry_run", "submit",
    "Sk8Error", "ConfigError", "Conflict", "FieldError", "Forbidden", "InvalidRequest",
    "NotFound", "PayloadTooLarge", "RunFailed", "ServerError", "SessionFailed",
    "TooManyRequests", "Unauthenticated", "Unavailable", "Unreachable",
    "UnsupportedMediaType", "WaitTimeout",
]
__version__ = "0.1.0"
