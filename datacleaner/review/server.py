"""`datacleaner review`: a local web app over one review list.  [I/O, web]

A plain threaded HTTP server from the standard library (no web framework to install), serving
one page, its script and style, a JSON API and JPEG renditions of the listed images:

    GET  /?token=T                  the page; sets a cookie so later requests carry the token
    GET  /static/app.js, app.css    the page's script and style
    GET  /api/meta                  classes, counts, the choices of each filter
    GET  /api/rows?offset=&limit=&given=&suggested=&issue=&status=   one page of rows, in list order
    GET  /api/references?cls=NAME   images of a class the committee is most sure of (clean runs)
    (each row of /api/rows carries `group`: the other files of its duplicate group, with their labels)
    GET  /image?path=P&size=thumb|large   a listed (or reference) image as JPEG, cached
    POST /api/decide                {"decisions": [{"path", "label"}]} or {"filter": {...}, "action"}
    POST /api/restore               {"rows": [{"path", "label", "by", "at"}]}: undo

Every request without the token (query `token`, header `X-Datacleaner-Token`, or the cookie the
page sets) gets 403; writes need the header, so another site cannot post with the cookie. The
image endpoint serves only paths listed in the list (or chosen as references, or in a listed image's
duplicate group), resolved inside
the images' root; anything else is 404. The only file written is the list itself (its review
columns, through lists.record) and the thumbnail cache under the list's folder.
"""

from __future__ import annotations

import errno
import getpass
import hmac
import json
import secrets
import socket
import sys
import threading
import webbrowser
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


from ..errors import DataCleanerError
from . import thumbs
from .lists import open_list
from .state import ListReplaced, ReviewState, as_int

MAX_BODY = 16 << 20  # bytes a POST may carry
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the first URL: never pass it on
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


def _read_token(token: str) -> str:
    """The cookie's value: lets the browser load images and rows, not write decisions."""
    return hmac.new(token.encode(), b"read", "sha256").hexdigest()


def _static(name: str) -> bytes:
    return resources.files("datacleaner.review").joinpath("static", name).read_bytes()


class Handler(BaseHTTPRequestHandler):
    """One request. The server object carries `state` (ReviewState), `token` and `cookie_name`."""

    server_version = "datacleaner-review"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the terminal shows the URL and errors only
        pass

    # Answers ---------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in {**SECURITY_HEADERS, "Content-Type": ctype, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", {"Cache-Control": "no-store"})

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    # Checks ----------------------------------------------------------------------------

    def _authorised(self, query: dict, *, writing: bool) -> bool:
        token = self.server.token
        offered = [(self.headers.get("X-Datacleaner-Token", ""), token)]
        if not writing:
            offered.append((query.get("token", ""), token))
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            if self.server.cookie_name in cookie:  # cookies go to every port of the host: this one only reads
                offered.append((cookie[self.server.cookie_name].value, _read_token(token)))
        return any(o and hmac.compare_digest(o.encode(), want.encode()) for o, want in offered)

    def _parse(self) -> tuple[str, dict]:
        url = urlsplit(self.path)
        return url.path, {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}

    # Methods ---------------------------------------------------------------------------

    def do_GET(self):
        path, query = self._parse()
        if not self._authorised(query, writing=False):
            return self._error(HTTPStatus.FORBIDDEN, "forbidden: open the URL with the token that `datacleaner review` printed")
        state: ReviewState = self.server.state
        try:
            if path == "/":
                cookie = f"{self.server.cookie_name}={_read_token(self.server.token)}; Path=/; HttpOnly; SameSite=Strict"
                return self._send(200, _static("index.html"), "text/html; charset=utf-8", {"Set-Cookie": cookie, "Cache-Control": "no-store"})
            if path == "/favicon.ico":
                return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            if path.startswith("/static/") and path[len("/static/"):] in STATIC:
                name = path[len("/static/"):]
                return self._send(200, _static(name), STATIC[name], {"Cache-Control": "no-cache"})
            if path == "/api/meta":
                return self._json(state.meta())
            if path == "/api/rows":
                return self._json(state.rows(query))
            if path == "/api/references":
                return self._json({"cls": query.get("cls", ""), "paths": state.references.get(query.get("cls", ""), [])})
            if path == "/image":
                return self._image(query)
        except ListReplaced as exc:
            return self._error(HTTPStatus.CONFLICT, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            return None
        return self._error(HTTPStatus.NOT_FOUND, "not found")

    do_HEAD = do_GET

    def _image(self, query: dict) -> None:
        state: ReviewState = self.server.state
        listed = query.get("path", "")
        src = state.lst.image_path(listed) if listed in state.allowed else None
        if src is None or not src.is_file():
            return self._error(HTTPStatus.NOT_FOUND, "not an image of this list")
        size = thumbs.LARGE if query.get("size") == "large" else thumbs.THUMB
        made = thumbs.cached(src, size, state.lst.folder / "thumbs")
        if made is None:
            return self._error(HTTPStatus.NOT_FOUND, "this file cannot be read as an image")
        data, key = made
        etag = f'"{key}"'
        caching = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
        if self.headers.get("If-None-Match") == etag:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            for k, v in {**SECURITY_HEADERS, **caching, "Content-Length": "0"}.items():
                self.send_header(k, v)
            self.end_headers()
            return None
        return self._send(200, data, "image/jpeg", caching)

    def do_POST(self):
        path, query = self._parse()
        if not self._authorised(query, writing=True):
            self.close_connection = True  # its body stays unread
            return self._error(HTTPStatus.FORBIDDEN, "forbidden: writes need the X-Datacleaner-Token header")
        length = as_int(self.headers.get("Content-Length"), 0)
        if length > MAX_BODY:
            self.close_connection = True
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            return self._error(HTTPStatus.BAD_REQUEST, f"bad request: {exc}")
        state: ReviewState = self.server.state
        try:
            if path == "/api/decide":
                return self._json(state.decide(body))
            if path == "/api/restore":
                return self._json(state.restore(body))
        except KeyError as exc:
            return self._error(HTTPStatus.NOT_FOUND, f"not in this list: {exc.args[0]}")
        except ListReplaced as exc:
            return self._error(HTTPStatus.CONFLICT, str(exc))
        except (DataCleanerError, ValueError, TypeError) as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except OSError as exc:
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not save {state.lst.path}: {exc}")
        return self._error(HTTPStatus.NOT_FOUND, "not found")


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ReviewServer6(ReviewServer):
    address_family = socket.AF_INET6


@dataclass
class Running:
    """A started review server: its URL (with the token) and how to stop it."""

    url: str
    server: ReviewServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def start(target: str | Path, *, host: str = "127.0.0.1", port: int = 8765, reviewer: str | None = None,
          root: str | Path | None = None, token: str | None = None) -> Running:
    """Open the list and serve it in a background thread; returns the URL with its token."""
    lst = open_list(target, root)
    state = ReviewState(lst, reviewer or _login_name())
    try:
        server = (ReviewServer6 if ":" in host else ReviewServer)((host, port), Handler)
    except OSError as exc:
        hint = "pass another --port (0 picks a free one)" if exc.errno == errno.EADDRINUSE else "check --host"
        raise DataCleanerError(f"cannot listen on {host}:{port} ({exc.strerror}); {hint}") from None
    server.state, server.token = state, token or secrets.token_urlsafe(24)
    bound_port = server.server_address[1]
    server.cookie_name = f"datacleaner_review_{bound_port}"  # cookies ignore ports: one name per server
    thread = threading.Thread(target=server.serve_forever, name="datacleaner-review", daemon=True)
    thread.start()
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return Running(f"http://{shown}:{bound_port}/?token={server.token}", server, thread)


def serve(target: str | Path, *, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True,
          reviewer: str | None = None, root: str | Path | None = None, echo=print) -> None:
    """`datacleaner review`: start, print the URL (one line), open the browser, serve until Ctrl-C."""
    running = start(target, host=host, port=port, reviewer=reviewer, root=root)
    lst = running.server.state.lst
    echo(running.url)
    note = f"reviewing {lst.path} ({len(lst.table)} rows); decisions are saved to it as you go; Ctrl-C stops"
    if host not in ("127.0.0.1", "localhost", "::1"):
        note += f"\nwarning: listening on {host}: anyone who can reach this machine and has the URL can review"
    print(note, file=sys.stderr, flush=True)
    if open_browser:
        webbrowser.open(running.url)
    try:
        running.thread.join()
    except KeyboardInterrupt:
        running.stop()
        print(f"stopped; the decisions are in {lst.path}", file=sys.stderr)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        return "reviewer"
