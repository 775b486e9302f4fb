"""What guards the web server itself (not the page): on this machine only requests addressed to
this machine are answered (a page elsewhere that rebinds its name to 127.0.0.1 gets nothing), an
upload request is bounded as a whole (not only per file), and in workshop mode password guesses are
limited per client."""
from __future__ import annotations

import re
import time
from collections import defaultdict, deque

from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse

LOCAL_NAMES = ["127.0.0.1", "localhost"]
LOGIN_TRIES = 10  # login attempts per client ...
LOGIN_WINDOW_S = 60.0  # ... in this many seconds


class LoginLimit:
    """ASGI middleware: at most LOGIN_TRIES login requests per client address per LOGIN_WINDOW_S;
    the rest are answered 429 until the window has passed."""

    def __init__(self, app, tries: int = LOGIN_TRIES, window_s: float = LOGIN_WINDOW_S):
        self.app, self.tries, self.window_s = app, tries, window_s
        self.seen: dict[str, deque] = defaultdict(deque)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/login"):
            now, times = time.monotonic(), self.seen[_client(scope)]
            while times and now - times[0] > self.window_s:
                times.popleft()
            if len(times) >= self.tries:
                wait = int(self.window_s - (now - times[0])) + 1
                await PlainTextResponse(f"Too many login attempts; try again in {wait} s.", status_code=429,
                                        headers={"Retry-After": str(wait)})(scope, receive, send)
                return
            times.append(now)
        await self.app(scope, receive, send)


class UploadLimit:
    """ASGI middleware: an upload request as a whole (all its files) may carry at most `max_bytes`;
    its declared length is checked before a byte is read, and one without a length is refused."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/upload"):
            length = dict(scope["headers"]).get(b"content-length")
            if length is None or not length.isdigit():
                await PlainTextResponse("Uploads must declare their length.", status_code=411)(scope, receive, send)
                return
            if int(length) > self.max_bytes:
                await PlainTextResponse(f"An upload may carry at most {self.max_bytes // 1_000_000} MB in all; "
                                        "this one exceeds the maximum allowed size.", status_code=413)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


STREAMS_PER_CLIENT = 32  # open event streams (heartbeats, queue updates) per client address


class StreamGuard:
    """ASGI middleware for the long-lived event streams: in workshop mode a heartbeat needs the
    login (the server's other routes check it themselves), and no client holds more than
    STREAMS_PER_CLIENT streams open at once (thousands of them would use up the server's files)."""

    def __init__(self, app, need_login: bool, per_client: int = STREAMS_PER_CLIENT):
        self.app, self.need_login, self.per_client = app, need_login, per_client
        self.open: dict[str, int] = defaultdict(int)

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not ("/heartbeat/" in path or path.rstrip("/").endswith("/queue/data")):
            await self.app(scope, receive, send)
            return
        if self.need_login and "/heartbeat/" in path and not _logged_in(scope):
            await PlainTextResponse("Log in first.", status_code=401)(scope, receive, send)
            return
        client = _client(scope)
        if self.open[client] >= self.per_client:
            await PlainTextResponse("Too many open connections from this address.", status_code=429)(
                scope, receive, send)
            return
        self.open[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open[client] -= 1


def _client(scope) -> str:
    """The address a request came from."""
    return (scope.get("client") or ("?", 0))[0]


def _logged_in(scope) -> bool:
    """Whether the request carries the login cookie of a session this server opened."""
    from http.cookies import SimpleCookie

    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if tokens is None or cookie_id is None:
        return False
    jar = SimpleCookie()
    try:
        jar.load(dict(scope["headers"]).get(b"cookie", b"").decode("latin-1"))
    except Exception:
        return False
    return any(name in jar and jar[name].value in tokens
               for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"))


API_INFO = re.compile(rb"(window\.gradio_api_info = ).*?(;?</script>)", re.S)


class HideApiBeforeLogin:
    """ASGI middleware for workshop mode: the page a visitor gets before logging in does not carry
    the description of every action the studio offers (Gradio embeds it in the page)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in ("/", "") \
                or _logged_in(scope):
            await self.app(scope, receive, send)
            return
        start, body = {}, []

        async def keep(msg):
            if msg["type"] == "http.response.start":
                start.update(msg)
            elif msg["type"] == "http.response.body":
                body.append(msg.get("body", b""))
                if not msg.get("more_body"):
                    page = API_INFO.sub(rb"\1{}\2", b"".join(body))
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    await send({**start, "headers": headers + [(b"content-length", str(len(page)).encode())]})
                    await send({"type": "http.response.body", "body": page})
        await self.app(scope, receive, keep)


def middleware(local_only: bool, login_limit: bool, max_upload_bytes: int) -> list[Middleware]:
    out = [Middleware(UploadLimit, max_bytes=max_upload_bytes), Middleware(StreamGuard, need_login=login_limit)]
    if login_limit:
        out.append(Middleware(HideApiBeforeLogin))
    if local_only:
        out.append(Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_NAMES))
    if login_limit:
        out.append(Middleware(LoginLimit))
    return out
