"""Who may call the API: nobody but this machine, unless an API key is set.

* Binding loopback (``127.0.0.1``, ``::1``, ``localhost``) needs no key: only local processes
  can connect. Binding any other address without ``SENTINANCE_API_KEY`` is refused at start
  (:func:`check_bind`), so the API is never exposed open by accident.
* With a key, every ``/v1`` request and ``/metrics`` must carry it (``X-API-Key: <key>`` or
  ``Authorization: Bearer <key>``); ``/health``, ``/ready`` and the OpenAPI docs stay open so
  probes and people can find their way. Keys are compared in constant time
  (:func:`hmac.compare_digest` on their SHA-256 digests, so not even the length leaks).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from fastapi import Request

from sentinance_assets.settings import Settings


class Unauthorized(Exception):
    """Missing or wrong API key (401)."""


class InsecureBind(ValueError):
    """A non-loopback address without an API key."""


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Raise :class:`InsecureBind` when ``host`` is reachable from other machines and no key
    protects it."""
    if not is_loopback(host) and not settings.api_key:
        raise InsecureBind(
            f"refusing to listen on {host} without an API key: set SENTINANCE_API_KEY "
            "(at least 16 characters) or bind 127.0.0.1"
        )


def presented_key(request: Request) -> str | None:
    """The key a request carries: ``X-API-Key``, else ``Authorization: Bearer``."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class KeyCheck:
    """A FastAPI dependency: passes when no key is configured or the request carries it."""

    def __init__(self, key: str | None) -> None:
        self._expected = _digest(key) if key else None

    def __call__(self, request: Request) -> None:
        if self._expected is None:
            return
        given = presented_key(request)
        if given is None or not hmac.compare_digest(_digest(given), self._expected):
            raise Unauthorized("a valid API key is required (X-API-Key or Authorization: Bearer)")
