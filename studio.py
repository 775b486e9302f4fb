"""GAN Studio: train your own GANs on your own images, then play with them, in the browser.

    python studio.py                         # http://127.0.0.1:7860, workspace in ./workspace
    python studio.py --listen --password a-long-secret --data-root /srv/datasets   # workshop mode (LAN)

The page opens in the default browser (see browser_wanted); in a Jupyter notebook
`from studio import launch; launch()` shows it in the notebook. This file only launches the page
(`ui/`); every model, training, file and image operation is in `gan_core`, which the command line
(`python -m gan_core`) and notebooks use as well.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
import webbrowser
from pathlib import Path

from gan_core import SHIPPED_MODELS as DEFAULT_MODELS_DIR  # the package alone: no torch yet
LOCAL_HOSTS = ("127.0.0.1", "localhost")
MIN_PASSWORD = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python studio.py", description="GAN Studio: train GANs on your own images "
                                "and play with them in the browser.")
    p.add_argument("--host", default=None, help="address to serve on (default 127.0.0.1; 0.0.0.0 with --listen)")
    p.add_argument("--port", type=int, default=7860, help="port (default %(default)s)")
    p.add_argument("--workspace", default="workspace", help="folder for runs and exports (default ./workspace)")
    p.add_argument("--models", default=str(DEFAULT_MODELS_DIR),
                   help="folder of ready model folders (default: checkpoints/ beside studio.py)")
    p.add_argument("--listen", action="store_true",
                   help="workshop mode: serve on the local network; needs --password and --data-root")
    p.add_argument("--user", default="studio", help="login name in workshop mode (default %(default)s)")
    p.add_argument("--password", default=os.environ.get("GAN_STUDIO_PASSWORD"),
                   help="login password in workshop mode (or set GAN_STUDIO_PASSWORD)")
    p.add_argument("--data-root", help="in workshop mode, training folders must be inside this folder")
    p.add_argument("--no-browser", action="store_true", help="do not open the studio in the default browser")
    a = p.parse_args(argv)
    a.host = a.host or ("0.0.0.0" if a.listen else "127.0.0.1")
    if a.listen:
        if not a.password:
            p.error("--listen serves the studio to the whole network, so it needs --password "
                    "(or the GAN_STUDIO_PASSWORD environment variable).")
        if len(a.password) < MIN_PASSWORD:
            p.error(f"--password must have at least {MIN_PASSWORD} characters: the studio is open to the network.")
        if not a.data_root or not Path(a.data_root).expanduser().is_dir():
            p.error("--listen needs --data-root: an existing folder that holds the training data people may use.")
    elif a.host == "::1":
        p.error("--host ::1: the web server takes IPv4 addresses only; 127.0.0.1 (the default) is this machine too.")
    elif a.host not in LOCAL_HOSTS:
        p.error(f"--host {a.host} would expose the studio to other machines; use --listen with --password.")
    return a


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def browser_wanted(a: argparse.Namespace, env=None, platform: str | None = None) -> bool:
    """Open the browser? Not with --no-browser, not in workshop mode (the studio is for others),
    not under CI (CI set) or pytest, and on Linux and other Unix-likes only with a desktop (DISPLAY
    or WAYLAND_DISPLAY) or a browser named in BROWSER: over SSH the address is printed instead."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    if a.no_browser or a.listen or env.get("PYTEST_CURRENT_TEST") or \
            env.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    desktop = any(env.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"))
    return desktop or platform in ("darwin", "win32", "cygwin")


def open_browser(url: str, timeout: float = 30.0) -> bool:
    """Open `url` in a new tab of the default browser once the studio answers there (asked directly,
    not through a proxy); False if it does not answer within `timeout` seconds."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=5) as r:
                if r.status < 500:
                    break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        return False
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    from gan_core.workspace import Workspace  # after the flags: --help answers at once
    os.environ["GRADIO_TEMP_DIR"] = str(Workspace(a.workspace).fresh_web_temp())
    from ui import build_app, launch_app
    demo = build_app(Path(a.workspace), models_dir=a.models, data_root=a.data_root if a.listen else None)
    try:
        launch_app(demo, host=a.host, port=a.port, auth=(a.user, a.password) if a.listen else None,
                   prevent_thread_lock=True, quiet=True)
    except Exception as e:  # the port is taken, the address is not this machine's, ...
        print(f"error: cannot serve on {a.host}:{a.port} ({type(e).__name__}: {e}). Is another studio running? "
              "Try --port.", file=sys.stderr)
        return 2

    def interrupt(*_):  # `kill` or a closed terminal: stop as Ctrl-C does (the run saves a checkpoint)
        raise KeyboardInterrupt
    try:  # from here on Ctrl-C closes the studio, however early it comes
        for sig in [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]:
            signal.signal(sig, interrupt)
        url = f"http://{'127.0.0.1' if a.host in ('0.0.0.0', '::') else a.host}:{demo.server_port}/"
        print(f"GAN Studio is running at {url}  (Ctrl-C to quit)\nworkspace: {demo.ctx.ws.root}")
        if browser_wanted(a):
            print("opening it in your browser (--no-browser not to)")
            threading.Thread(target=open_browser, args=(url,), daemon=True).start()
        if a.listen:
            print(f"workshop mode: serving on {a.host}, login '{a.user}', training data only from {a.data_root}")
        sys.stdout.flush()
        while demo.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("\nclosing GAN Studio")
    try:
        if demo.ctx.jobs.stop():
            print("stopping the training run after this step and saving a checkpoint "
                  "(Ctrl-C again to quit at once)", flush=True)
            demo.ctx.jobs.wait(300)
        demo.close()
    except KeyboardInterrupt:
        return 130
    return 0


def launch(*args, **kwargs):
    """The studio inside a Jupyter cell (see `ui.inline.launch`); a second call shows the same one."""
    from ui.inline import launch as inline_launch  # gradio loads only when asked for
    return inline_launch(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
