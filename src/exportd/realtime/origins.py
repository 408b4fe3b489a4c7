"""Which browser origins may open a Socket.IO connection.

A browser sends ``Origin`` on every WebSocket handshake and cross-site poll, and
sends the user's cookie along with it; without a check, any page the user visits
could open a socket in the user's name. A connection is accepted from:

* the server's own origin as the browser saw it: the ``Host`` the request was
  sent to, over http or https (a TLS-terminating proxy forwards ``https://host``
  to a server that itself speaks http);
* the origin of ``EXPORTD_PUBLIC_URL``, when set;
* every origin in ``EXPORTD_ALLOWED_ORIGINS``.

``X-Forwarded-*`` headers are not trusted: a client sets them. ``Origin: null``
(sandboxed frames, ``file:`` pages) is refused unless listed. A handshake with no
``Origin`` at all is not a browser's (the SDK, the CLI) and is not checked here;
the token check in ``connect`` still applies to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port or a path.

    A URL's origin: ``https://lab.example:443/exportd/`` → ``https://lab.example``.
    """
    text = origin.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text.lower()
    if not parts.scheme or not parts.hostname:
        return text.lower()
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None and _DEFAULT_PORTS.get(parts.scheme.lower()) != port:
        host = f"{host}:{port}"
    return f"{parts.scheme.lower()}://{host}"


def origin_check(allowed: Iterable[str]) -> Callable[[str | None, dict], bool]:
    """The check python-socketio calls with the handshake's ``Origin`` and its WSGI-style environ."""
    listed = {normalise(origin) for origin in allowed if origin.strip()}

    def accepts(origin: str | None, environ: dict | None = None) -> bool:
        if not origin:
            return False  # asked only for CORS headers: nothing to allow
        candidate = normalise(origin)
        if candidate in listed:
            return True
        host = (environ or {}).get("HTTP_HOST", "")
        return bool(host) and candidate in {normalise(f"http://{host}"), normalise(f"https://{host}")}

    return accepts
