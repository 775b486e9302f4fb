"""What guards the web server itself (not the page): on this machine only requests addressed to
this machine are answered (a page elsewhere that rebinds its name to 127.0.0.1 gets nothing), an
upload request is bounded as a whole (not only per file), and in workshop mode password guesses are
limited per client."""
from __future__ import annotations

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
            client = (scope.get("client") or ("?", 0))[0]
            now, times = time.monotonic(), self.seen[client]
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


def middleware(local_only: bool, login_limit: bool, max_upload_bytes: int) -> list[Middleware]:
    out = [Middleware(UploadLimit, max_bytes=max_upload_bytes)]
    if local_only:
        out.append(Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_NAMES))
    if login_limit:
        out.append(Middleware(LoginLimit))
    return out
