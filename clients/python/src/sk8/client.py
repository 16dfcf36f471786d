"""The HTTP side: one small client for sk8's REST API (``docs/openapi.json``), on the standard
library, that turns every error answer into a typed :mod:`sk8.errors` exception."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

from . import errors
from .config import Settings

#: How long one request may take; log streams (``follow``) have no overall limit.
REQUEST_TIMEOUT = 30.0

Body = Union[Mapping[str, Any], bytes, None]


class Client:
    """sk8's REST API at ``settings.server``, sending ``settings.token`` as a bearer token."""

    def __init__(self, settings: Optional[Settings] = None, **given: Any) -> None:
        self.settings = settings or Settings.load(**given)

    def request(
        self,
        method: str,
        path: str,
        body: Body = None,
        *,
        query: Optional[Sequence[Tuple[str, str]]] = None,
        headers: Optional[Mapping[str, str]] = None,
        content_type: str = "application/json",
    ) -> Tuple[int, Any]:
        """Sends one request; returns ``(status, parsed JSON)`` of a 2xx, raises otherwise."""
        with self._open(method, path, body, query, headers, content_type) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None

    def stream(
        self, path: str, query: Optional[Sequence[Tuple[str, str]]] = None
    ) -> Iterator[str]:
        """GETs a text answer and yields it line by line as it arrives."""
        with self._open("GET", path, None, query, None, "", timeout=None) as answer:
            for line in answer:
                yield line.decode("utf-8", errors="replace")

    def _open(
        self,
        method: str,
        path: str,
        body: Body,
        query: Optional[Sequence[Tuple[str, str]]],
        headers: Optional[Mapping[str, str]],
        content_type: str,
        timeout: Optional[float] = REQUEST_TIMEOUT,
    ) -> Any:
        url = self.settings.server + path
        if query:
            url += "?" + urllib.parse.urlencode(list(query))
        data = None
        all_headers: Dict[str, str] = {"Accept": "application/json, text/plain"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers["Content-Type"] = content_type
        if self.settings.token:
            all_headers["Authorization"] = f"Bearer {self.settings.token}"
        all_headers.update(headers or {})
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            raise _typed(err) from None
        except (urllib.error.URLError, OSError) as err:
            raise errors.Unreachable(
                "unreachable",
                f"cannot reach sk8 at {self.settings.server}: {err}. Is `sk8 serve` running? "
                "Point at it with SK8_SERVER.",
            ) from err


def _typed(err: urllib.error.HTTPError) -> errors.Sk8Error:
    raw = err.read()
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    return errors.from_response(err.code, body, err.headers.get("Retry-After"))
