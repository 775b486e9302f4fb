"""`python studio.py` on a desktop: it opens the default browser once the page answers (a fake
browser named in BROWSER stands in for it), not with --no-browser, and Ctrl-C stops it cleanly."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from argparse import Namespace
from pathlib import Path

import pytest

import studio

REPO = Path(__file__).resolve().parent.parent

FAKE_BROWSER = """
import json, sys, urllib.request
url = sys.argv[1]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(url, timeout=30) as r:  # what a browser would find there at that moment
    body = r.read().decode("utf-8", "replace")
with open(sys.argv[2], "a") as f:
    f.write(json.dumps({"url": url, "status": r.status, "studio": "GAN Studio" in body}) + "\\n")
"""


@pytest.mark.parametrize("flags, env, platform, wanted", [
    ([], {"DISPLAY": ":0"}, "linux", True),
    ([], {"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
    ([], {"BROWSER": "firefox"}, "linux", True),
    ([], {}, "linux", False),  # over SSH, on a server: the address is printed instead
    ([], {}, "darwin", True),
    ([], {}, "win32", True),
    (["--no-browser"], {"DISPLAY": ":0"}, "linux", False),
    ([], {"DISPLAY": ":0", "CI": "true"}, "linux", False),
    ([], {"DISPLAY": ":0", "CI": "false"}, "linux", True),
    ([], {"CI": "1"}, "win32", False),
    ([], {"DISPLAY": ":0", "PYTEST_CURRENT_TEST": "x"}, "linux", False),
])
def test_when_the_browser_opens(flags, env, platform, wanted):
    assert studio.browser_wanted(studio.parse_args(flags), env=env, platform=platform) is wanted


def test_never_in_workshop_mode(tmp_path):
    a = Namespace(no_browser=False, listen=True)
    assert studio.browser_wanted(a, env={"DISPLAY": ":0"}, platform="darwin") is False


def _default_sigint():
    """In the child before it starts: Ctrl-C as in a terminal. A suite started in the background by a
    shell (`pytest &`) inherits SIGINT ignored, and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Studio:
    """`python studio.py ...` in its own process, its output read line by line."""

    def __init__(self, tmp_path: Path, *flags: str):
        self.opened = tmp_path / "opened.jsonl"
        fake = tmp_path / "fake_browser.py"
        fake.write_text(FAKE_BROWSER)
        env = {k: v for k, v in os.environ.items()
               if k not in ("CI", "PYTEST_CURRENT_TEST", "DISPLAY", "WAYLAND_DISPLAY")}
        env["BROWSER"] = f"{sys.executable} {fake} %s {self.opened}"
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "studio.py"), "--port", str(studio.free_port()), "--workspace",
             str(tmp_path / "ws"), "--models", str(tmp_path), *flags],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, preexec_fn=_default_sigint)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 180) -> str:
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} in the output: {''.join(self.seen)}")

    def ctrl_c(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(120)
        time.sleep(0.2)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.mark.slow
def test_the_studio_opens_the_browser_once_it_answers_and_ctrl_c_stops_it(tmp_path):
    s = Studio(tmp_path)
    try:
        line = s.wait_for("GAN Studio is running at")
        url = line.split(" at ")[1].split()[0]
        s.wait_for("opening it in your browser")
        t0 = time.time()
        # the fake browser creates the file, then writes its line: wait for the whole line
        while not (s.opened.exists() and s.opened.read_text().endswith("\n")) and time.time() - t0 < 120:
            time.sleep(0.1)
        opened = [json.loads(x) for x in s.opened.read_text().splitlines()]
        assert opened == [{"url": url, "status": 200, "studio": True}]  # one tab, on a page that answered
        assert s.ctrl_c() == 0
        assert any("closing GAN Studio" in x for x in s.seen)
        assert "Traceback" not in "".join(s.seen)
    finally:
        s.kill()


@pytest.mark.slow
def test_no_browser_opens_nothing(tmp_path):
    s = Studio(tmp_path, "--no-browser")
    try:
        s.wait_for("GAN Studio is running at")
        assert s.ctrl_c() == 0
        out = "".join(s.seen)
        assert "closing GAN Studio" in out and "opening it in your browser" not in out
        assert not s.opened.exists()
    finally:
        s.kill()
