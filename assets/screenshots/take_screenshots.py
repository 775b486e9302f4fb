"""Screenshots of the three studio tabs (1366x768 by default), for the README.

    python assets/screenshots/take_screenshots.py [--workspace DIR] [--size 1280x720] [--out DIR]

Explore and Texture show the shipped demo models (checkpoints/). The Train tab shows a short
training run on the demo classes, started in WORKSPACE (default: a temporary folder) and stopped
again after the screenshot. Needs Debian's chromium.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import studio  # noqa: E402
import ui  # noqa: E402
from gan_core import checkpoint  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _top(pg) -> None:
    pg.mouse.move(0, 0)
    pg.evaluate("window.scrollTo(0, 0)")
    pg.wait_for_timeout(300)


def texture_shot(pg, out: Path) -> None:
    """Texture: the first texture appears on opening; paint a stroke of brush 2 (brick) over the
    texture and generate a 512 px tile, shown 3 x 3 at real scale."""
    pg.get_by_role("tab", name="Texture").click()
    pg.get_by_text("source texture(s)").wait_for()
    pg.get_by_text("px, seed").wait_for()  # the first texture
    pg.get_by_role("radio", name="512").check()
    canvas = pg.locator("canvas").first
    canvas.scroll_into_view_if_needed()
    pg.get_by_role("button", name="Brush", exact=True).click()
    box = canvas.bounding_box()
    for dx in (0, 30, 60):  # a broad band: a stroke much narrower than a noise cell (32 px) hardly shows
        x0, y0 = box["x"] + box["width"] * 0.25 + dx, box["y"] + box["height"] * 0.15
        pg.mouse.move(x0, y0)
        pg.mouse.down()
        for k in range(30):
            pg.mouse.move(x0 + 5 * k, y0 + 6 * k)
        pg.mouse.up()
    pg.get_by_role("button", name="Generate texture").click()
    pg.get_by_text("512 x 512 px", exact=True).wait_for()
    pg.wait_for_timeout(2000)
    pg.locator(".rs-out").click()
    pg.wait_for_timeout(500)
    _top(pg)
    pg.screenshot(path=str(out / "texture.png"))


def main(workspace: str, out: Path = HERE, size: tuple[int, int] = (1366, 768)) -> None:
    from playwright.sync_api import sync_playwright

    demo = ui.build_app(Path(workspace), models_dir=studio.DEFAULT_MODELS_DIR)
    jobs = demo.ctx.jobs
    model = Path(demo.ctx.ws.models("cgan")[0][1])
    port = studio.free_port()
    ui.launch_app(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            pg = b.new_page(viewport={"width": size[0], "height": size[1]})
            pg.set_default_timeout(60_000)
            pg.goto(f"http://127.0.0.1:{port}/")
            pg.get_by_role("button", name="Start training").wait_for()

            # Train: check the demo data, then train a new run for a little while
            pg.get_by_label("Training data").fill(str(HERE.parent / "demo" / "classes"))
            pg.get_by_role("button", name="Check data").click()
            pg.get_by_text("5 classes").wait_for()
            pg.get_by_label("Run name").fill("my-first-run")
            pg.get_by_role("button", name="Start training").click()
            pg.locator(".studio-progress", has_text="images/s").wait_for()
            # until the first sample grid (step 200) and the second gauge point (step 250) are on screen
            pg.wait_for_function("(+(document.querySelector('.studio-progress').innerText.match(/step (\\d+)/) "
                                 "|| [0, 0])[1]) >= 256", timeout=900_000)  # over 5 min without AVX512-BF16
            pg.wait_for_timeout(3000)
            _top(pg)
            pg.screenshot(path=str(out / "train.png"))
            pg.get_by_role("button", name="Stop", exact=True).click()
            pg.locator(".studio-progress", has_text="stopped at step").wait_for()

            # Explore: a blend of two classes, eight seeds, the grid of classes x seeds, and children of one
            pg.get_by_role("tab", name="Explore").click()
            names = checkpoint.read_config(checkpoint.resolve_model_dir(model)).model.class_names
            pg.get_by_text(f"{model.name}: {len(names)} classes").wait_for()
            pg.get_by_label(f"number input for {names[0]}").fill("0.3")
            pg.get_by_label(f"number input for {names[-2]}").fill("0.7")
            pg.get_by_label("number input for Images").fill("8")
            pg.get_by_label("number input for Images").press("Enter")
            pg.get_by_label("Seed B").fill("7")
            pg.get_by_label("Seed B").press("Tab")
            pg.get_by_role("button", name="Make grid").click()
            pg.wait_for_timeout(3000)
            # the sixth picture becomes the parent of eight children
            pg.locator(".explore-gallery").first.locator("button.thumbnail-item").nth(5).click()
            pg.get_by_text("Parent: seed 5", exact=True).wait_for()
            pg.get_by_role("button", name="Children", exact=True).click()
            pg.get_by_text("children of seed 5", exact=True).wait_for()
            pg.wait_for_timeout(2000)
            _top(pg)
            pg.screenshot(path=str(out / "explore.png"))

            texture_shot(pg, out)
            b.close()
    finally:
        jobs.stop()
        jobs.wait(60)
        demo.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Screenshots of the studio's three tabs")
    ap.add_argument("--workspace", help="workspace for the training run (default: a temporary folder)")
    ap.add_argument("--size", default="1366x768", help="browser window, WxH (default %(default)s)")
    ap.add_argument("--out", default=str(HERE), help="folder for train.png, explore.png, texture.png")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GRADIO_TEMP_DIR"] = str(Path(tmp) / "gradio")  # the page's files go with the folder
        main(a.workspace or tmp, Path(a.out), (w, h))
