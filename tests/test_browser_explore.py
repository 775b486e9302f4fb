"""Explore in headless Chromium: breeding (click, children, crossbreed, undo, favourite, reload),
the slider keyboard and the blend notices, and a keyframe walk exported as MP4 that plays."""
from __future__ import annotations

import re
import time

import pytest

from tests.test_browser import _choose, _img_src, _wait_new_src, app, browser, page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _shot(page, name):
    import os
    folder = os.environ.get("STUDIO_SHOTS")
    if folder:
        page.screenshot(path=f"{folder}/{name}.png", full_page=True)


def _captions(page) -> list[str]:
    return page.locator(".explore-gallery").first.locator(".caption-label").all_inner_texts()


def _wait_captions(page, cond, timeout=30) -> list[str]:
    t0, caps = time.time(), []
    while time.time() - t0 < timeout:
        caps = _captions(page)
        if caps and cond(caps):
            return caps
        page.wait_for_timeout(150)
    raise AssertionError(f"the gallery shows {caps}")


def _thumb(page, i):
    return page.locator(".explore-gallery").first.locator("button.thumbnail-item").nth(i)


def _open(page):
    page.get_by_role("tab", name="Explore").click()
    _choose(page, "Conditional model", "demo-colours  (demo)")
    page.get_by_text("demo-colours: 3 classes").wait_for()
    return _wait_captions(page, lambda c: c == ["seed 0", "seed 1", "seed 2", "seed 3"])


def test_a_breeding_session_in_the_browser(page, app):
    _open(page)
    _thumb(page, 2).click()
    _wait_captions(page, lambda c: c[2] == "▶ seed 2")
    page.get_by_text("Parent: seed 2", exact=True).wait_for()
    page.get_by_role("button", name="Children", exact=True).click()
    caps = _wait_captions(page, lambda c: len(c) == 9)
    assert caps[0] == "▶ seed 2" and caps[1:] == [f"child {i}" for i in range(1, 9)]
    page.get_by_text("Lineage: seeds 0-3 → children of seed 2").wait_for()
    _shot(page, "explore-children")
    _thumb(page, 3).click()
    _wait_captions(page, lambda c: c[3].startswith("▶"))
    _thumb(page, 5).click()
    _wait_captions(page, lambda c: c[5].startswith("▶") and c[3].startswith("A · "))
    page.get_by_role("button", name="Crossbreed").click()
    caps = _wait_captions(page, lambda c: c[0] == "A" and c[-1] == "B")
    assert len(caps) == 10
    _shot(page, "explore-crossbreed")
    strip = page.locator(".lineage-strip .caption-label")
    assert strip.all_inner_texts() == ["1. seeds 0-3", "2. children of seed 2", "3. cross of child 3 and child 5"]
    page.locator(".lineage-strip button.thumbnail-item").first.click()  # back to the first generation
    _wait_captions(page, lambda c: c == ["seed 0", "seed 1", "seed 2", "seed 3"])
    page.get_by_role("button", name="Redo").click()
    _wait_captions(page, lambda c: len(c) == 9 and c[1] == "child 1")
    page.get_by_role("button", name="Redo").click()
    _wait_captions(page, lambda c: c[0] == "A")
    page.get_by_role("button", name="Undo").click()
    _wait_captions(page, lambda c: len(c) == 9 and c[1] == "child 1")
    _thumb(page, 4).click()
    _wait_captions(page, lambda c: c[4] == "▶ child 4")
    page.get_by_role("button", name="Keep as favourite").click()
    favs = page.locator(".fav-gallery")
    favs.get_by_text("demo-colours: child 4").wait_for()
    page.reload()  # a new page (as after a restart): the favourite is read from the workspace
    page.get_by_role("tab", name="Explore").click()
    page.locator(".fav-gallery").get_by_text("demo-colours: child 4").wait_for()
    _shot(page, "explore-favourites-after-reload")
    assert len(list((app["ws"] / "favourites").glob("*.json"))) == 1

    # an exported picture dropped on the tab brings its picture back
    _open(page)
    _thumb(page, 3).click()
    _wait_captions(page, lambda c: c[3] == "▶ seed 3")
    page.get_by_role("button", name="Export picture").click()
    dl = page.get_by_role("button", name=re.compile(r"Download demo-colours-.*\.png"))
    dl.wait_for()
    png = app["ws"] / "exports" / dl.inner_text().strip().removeprefix("Download ")
    page.locator("input[type=file]").last.set_input_files(str(png))
    _wait_captions(page, lambda c: c == ["▶ seed 3"])
    page.get_by_text("→ opened export").wait_for()


def test_keys_and_blend_notices_on_the_sliders(page, app):
    _open(page)
    before = _wait_new_src(page, "Images", "")
    page.get_by_text("Only blue is above zero").wait_for()  # why moving it alone changes nothing
    pos = page.get_by_label("range slider for Truncation")
    pos.scroll_into_view_if_needed()
    pos.focus()
    page.keyboard.press("ArrowLeft")  # the keyboard changes the picture too
    after = _wait_new_src(page, "Images", before)
    box = page.get_by_label("Seed A")
    box.fill("5")
    box.press("Enter")
    _wait_captions(page, lambda c: c[0] == "seed 5")
    num = page.get_by_label("number input for green")
    num.fill("0.5")
    num.press("Enter")  # Enter in a slider's number box redraws at once
    page.get_by_text("Blend: blue, green").wait_for()
    moved = _wait_new_src(page, "Images", after)
    n = page.get_by_label("number input for blue")
    n.fill("0")
    n.press("Enter")
    page.get_by_text("Only green is above zero").wait_for()
    moved = _wait_new_src(page, "Images", moved)
    n = page.get_by_label("number input for green")
    n.fill("0")
    n.press("Enter")
    page.get_by_text("All class sliders are at 0").wait_for()
    page.wait_for_timeout(800)
    assert _img_src(page, "Images") == moved  # the pictures stay, with a notice instead of an error
    assert page.locator(".explore-gallery .error").count() == 0 and page.get_by_text("Error", exact=True).count() == 0


def test_a_keyframe_walk_exports_an_mp4_that_plays(page, app):
    _open(page)
    page.get_by_text("Keyframe walk (video)").click()
    for i in range(4):
        _thumb(page, i).click()
        _wait_captions(page, lambda c, i=i: c[i].startswith("▶"))
        page.get_by_role("button", name="Add keyframe").click()
        page.get_by_text(f"{i + 1}. seed {i} (smooth)").wait_for()
    for label, value in (("Frames per keyframe", "96"), ("Export scale", "8")):
        page.get_by_label(f"number input for {label}").fill(value)
        page.get_by_label(f"number input for {label}").press("Enter")
    walk, cancel = page.get_by_role("button", name="Export walk"), page.get_by_role("button", name="Cancel")
    walk.click()
    # the walk's progress: other components keep hidden progress boxes of their own in the page
    progress = page.locator(".progress-text").filter(visible=True).first
    progress.wait_for(timeout=20_000)  # progress shows while the frames are drawn and written
    text = progress.inner_text()
    assert walk.is_disabled() and cancel.is_enabled()  # no second export while one runs
    _shot(page, "explore-walk-progress")
    page.get_by_text(re.compile(r"^Wrote demo-colours-walk-")).wait_for(timeout=120_000)
    assert page.get_by_text("385 frames").count() == 1 and re.search(r"\d", text), text
    video = page.locator("video").first
    video.wait_for()
    state = None
    for _ in range(100):
        state = video.evaluate("v => [v.readyState, v.duration, v.videoWidth, v.error && v.error.code]")
        if state[0] >= 2:
            break
        page.wait_for_timeout(100)
    assert state[0] >= 2 and abs(state[1] - 385 / 24) < 0.2 and state[2] == 256 and state[3] is None, state
    _shot(page, "explore-walk-done")
    assert walk.is_enabled() and cancel.is_disabled()
