"""The real page in headless Chromium (Playwright): train, explore and texture tabs.

Run with `python -m pytest -m browser`. Needs Debian's chromium at /usr/bin/chromium
(`apt-get install -y chromium`); the tests skip when it is missing.
"""
from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from gan_core import checkpoint
from tests.helpers import launch, read_image, shutdown, studio_env


CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    env = studio_env(tmp_path_factory.mktemp("browser"))
    demo, jobs, url = launch(env, refresh_seconds=0.5)
    env.update(demo=demo, jobs=jobs, url=url)
    yield env
    shutdown(demo, jobs)


@pytest.fixture
def page(browser, app):
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(app["url"])
    pg.get_by_role("button", name="Start training").wait_for()
    yield pg
    ctx.close()


def _progress(page) -> str:
    return page.locator(".studio-progress").inner_text()


def _wait_progress(page, pattern: str, timeout: float = 60) -> str:
    t0 = time.time()
    text = ""
    while time.time() - t0 < timeout:
        text = _progress(page)
        if re.search(pattern, text):
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"progress never matched {pattern!r}; it shows {text!r}")


def _img_src(page, label: str) -> str:
    """The src of the picture in the image block with this label ('' while empty)."""
    block = page.locator(".block", has=page.get_by_text(label, exact=True)).last
    img = block.locator("img")
    return img.first.get_attribute("src") if img.count() else ""


def _wait_new_src(page, label: str, old: str, timeout: float = 30) -> str:
    t0 = time.time()
    while time.time() - t0 < timeout:
        src = _img_src(page, label)
        if src and src != old:
            return src
        page.wait_for_timeout(200)
    raise AssertionError(f"the {label!r} image did not change")


def _fetch(page, src: str) -> np.ndarray:
    import io

    from PIL import Image
    if src.startswith("data:"):
        raw = base64.b64decode(src.split(",", 1)[1])
    else:
        raw = page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _wait_enabled(locator, enabled: bool, timeout: float = 30) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if locator.is_enabled() == enabled:
            return
        time.sleep(0.2)
    raise AssertionError(f"the button stayed {'disabled' if enabled else 'enabled'}")


def test_check_data_then_start_reload_and_stop_training(page, app):
    start, stop = page.get_by_role("button", name="Start training"), page.get_by_role("button", name="Stop", exact=True)
    assert start.is_enabled() and stop.is_disabled()  # nothing trains: only Start can be pressed
    page.get_by_label("Training data").fill(app["data"])
    page.get_by_role("button", name="Check data").click()
    page.get_by_text("3 classes, 18 images").wait_for()
    page.get_by_text("cannot be read as an image").wait_for()  # the broken file is listed
    page.get_by_label("Run name").fill("browser-run")
    page.get_by_role("radio", name="32", exact=True).check()
    _choose(page, "Train for", "the number of steps")
    page.get_by_label("Steps", exact=True).fill("100000")
    page.get_by_label("Batch").fill("4")
    page.get_by_text("More settings").click()
    page.get_by_label("Generator width").fill("4")
    page.get_by_label("Critic width").fill("4")
    page.get_by_label("Samples every (steps)").fill("2")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Started 'browser-run'").wait_for()
    # past step 10, the first logged step of a long run: the chart has points
    _wait_progress(page, r"browser-run · running · step (1[1-9]|[2-9]\d|\d{3,}) / 100000")
    _wait_new_src(page, "Latest samples (one row per class)", "")
    page.locator(".vega-embed").first.wait_for()  # the loss chart is drawn
    # the quality gauge: distance to the user's images from the untrained generator on
    page.get_by_text("Quality: how close the samples come to your images").wait_for()
    page.locator("img[src^='data:image/png']").first.wait_for()

    _wait_enabled(start, False)  # while a run trains, Start is off and Stop is on
    _wait_enabled(stop, True)
    page.reload()  # the job lives in the server: a new page reconnects to it
    page.get_by_role("button", name="Start training").wait_for()
    _wait_progress(page, r"browser-run · running · step [1-9]")
    _wait_enabled(start, False)
    page.get_by_role("button", name="Stop", exact=True).click()
    text = _wait_progress(page, r"stopped at step \d+")
    _wait_enabled(start, True)
    _wait_enabled(stop, False)
    step = int(re.search(r"stopped at step (\d+)", text).group(1))
    ckpt = checkpoint.checkpoint_dirs(app["ws"] / "runs" / "browser-run")[0]
    assert int(ckpt.name[5:]) == step
    assert app["jobs"].wait(30)


def test_texture_mode_hides_the_class_zip_and_names_its_samples(page, app):
    if (app["ws"] / "runs" / "browser-run").is_dir():
        # the page's first update shows that (conditional) run's samples under its own label: the
        # mode's label is for what is trained next, so switch after it
        _wait_progress(page, r"browser-run")
    zip_box = page.get_by_text("Or upload a zip of class folders")
    assert zip_box.is_visible()
    page.get_by_role("radio", name="Texture").check()
    zip_box.wait_for(state="hidden")
    page.get_by_text("Latest samples (one 256 px texture per source image)").wait_for()
    page.get_by_role("radio", name="Conditional images (class folders)").check()
    zip_box.wait_for()
    page.get_by_text("Latest samples (one row per class)").wait_for()


def _choose(page, label: str, option: str) -> None:
    page.get_by_label(label).click()
    page.get_by_role("option", name=option).click()


def test_moving_a_blend_slider_changes_the_image(page, app):
    page.get_by_role("tab", name="Explore").click()
    _choose(page, "Conditional model", "demo-colours  (demo)")
    page.get_by_text("demo-colours: 3 classes").wait_for()
    before = _wait_new_src(page, "Images", "")
    slider = page.get_by_label("range slider for green")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2)  # press and release
    after = _wait_new_src(page, "Images", before)
    a, b = _fetch(page, before), _fetch(page, after)
    assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() > 1
    # the interpolation position moves through latent space: another change
    pos_slider = page.get_by_label("range slider for Position A -> B")
    pos_slider.scroll_into_view_if_needed()
    pos = pos_slider.bounding_box()
    page.mouse.click(pos["x"] + pos["width"] * 0.5, pos["y"] + pos["height"] / 2)
    moved = _wait_new_src(page, "Images", after)
    assert not np.array_equal(_fetch(page, moved), b)

    page.get_by_role("button", name="Export PNG").first.click()
    dl = page.get_by_role("button", name=re.compile(r"Download demo-colours-.*\.png"))
    dl.wait_for()
    with page.expect_download() as info:
        dl.click()
    assert info.value.suggested_filename.startswith("demo-colours-")
    assert list((app["ws"] / "exports").glob("demo-colours-*.png"))


def test_generate_and_export_a_tileable_texture(page, app):
    page.get_by_role("tab", name="Texture").click()
    page.wait_for_timeout(500)
    assert [t.inner_text() for t in page.get_by_role("tab").all()][:3] == ["Train", "Explore", "Texture"]
    _choose(page, "Texture model", "stripes  (run, step 2)")
    page.get_by_text("1 source texture(s) (stripes)").wait_for()
    page.get_by_role("spinbutton", name="Width").fill("8192")
    page.get_by_role("spinbutton", name="Height").fill("8192")
    page.get_by_role("spinbutton", name="Seed", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('input[type=radio]')].some("
                           "r => r.value === '8192' && r.checked)")  # the preset follows the fields
    page.get_by_role("spinbutton", name="Width").fill("96")
    page.get_by_role("spinbutton", name="Height").fill("64")
    page.get_by_role("spinbutton", name="Seed", exact=True).click()
    page.wait_for_function("() => ![...document.querySelectorAll('input[type=radio]')].some("
                           "r => ['512', '1024', '2048', '4096', '8192'].includes(r.value) && r.checked)")
    assert page.get_by_label("Tileable (seamless when repeated)").is_checked()
    page.get_by_role("button", name="Generate texture").click()
    page.get_by_text("96 x 64 px", exact=True).wait_for()
    assert "no visible seam" in page.get_by_test_id("markdown").filter(has_text="Seam check").inner_text()
    tiles = page.locator(".rs-tiles")
    page.wait_for_function("() => document.querySelector('.rs-tiles').style.width === '288px'")
    assert tiles.evaluate("e => e.style.height") == "192px" and tiles.evaluate("e => e.style.backgroundSize") == "96px 64px"
    assert page.locator(".rs-zoom").inner_text() == "100%"
    shot = page.locator(".rs-view").screenshot(path=str(app["root"] / "real-scale.png"))
    from PIL import Image
    import io
    seen = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
    page.get_by_role("tab", name="Overview").click()
    tex = _fetch(page, _wait_new_src(page, "Texture", ""))
    assert tex.shape == (64, 96, 3)
    tiled = np.tile(tex, (3, 3, 1)).astype(int)
    found = [(y, x) for y in range(0, 4) for x in range(0, 4)
             if np.abs(seen[y:y + 192, x:x + 288] - tiled).mean() < 3]  # 3 x 3 copies at 1:1 (inside the border)
    assert found, "the viewer does not show 3 x 3 copies at 1:1"
    page.get_by_role("tab", name="Real scale 3 x 3").click()
    page.locator(".rs-in").click()
    assert page.locator(".rs-zoom").inner_text() == "200%" and tiles.evaluate("e => e.style.width") == "576px"
    page.locator(".rs-half").check()
    assert tiles.evaluate("e => e.style.backgroundPosition") == "96px 64px"  # half a copy at 200 %
    page.locator(".rs-view").screenshot(path=str(app["root"] / "real-scale-zoom.png"))
    page.locator(".rs-one").click()
    assert tiles.evaluate("e => e.style.width") == "288px"
    page.get_by_role("button", name="Export", exact=True).click()
    dl = page.get_by_role("button", name=re.compile(r"Download .*96x64.*\.png"))
    dl.wait_for()
    with page.expect_download() as info:
        dl.click()
    assert (read_image(info.value.path()) == tex).all()


def test_workshop_login_in_the_browser_opens_the_studio(browser, tmp_path):
    import studio
    import ui
    from gan_core.jobs import Jobs

    env = studio_env(tmp_path)
    demo = ui.build_app(env["ws"], models_dir=env["models"], jobs=Jobs())
    port = studio.free_port()
    ui.launch_app(demo, port=port, prevent_thread_lock=True, quiet=True, auth=("studio", "long-enough"))
    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        pg = ctx.new_page()
        pg.set_default_timeout(30_000)
        pg.goto(f"http://127.0.0.1:{port}/")
        pg.get_by_text("GAN Studio workshop: ask the host for the password").wait_for()
        pg.get_by_label("username").fill("studio")
        pg.get_by_label("password").fill("wrong-password")
        pg.get_by_role("button", name="Login").click()
        pg.get_by_text("Incorrect Credentials").wait_for()
        pg.get_by_label("username").fill("studio")
        pg.get_by_label("password").fill("long-enough")
        pg.get_by_role("button", name="Login").click()
        pg.get_by_role("button", name="Start training").wait_for()  # the whole studio, after the login
        pg.get_by_role("tab", name="Explore").click()
        pg.get_by_text("demo-colours: 3 classes").wait_for()  # and it works: a model opens
    finally:
        ctx.close()
        demo.close()
