"""The page's own pictures and field updates (no server): progress line, quality gauge, loss table,
and the fields that follow the variant."""
from __future__ import annotations

import pytest

from gan_core.config import NO_STEP_LIMIT, TrainConfig
from gan_core.jobs import RunView

# ui/ loads gradio (8 s): imported in the tests, and all of them in one process of a parallel run
# (pytest -n 2 --dist loadgroup), so that the other process never loads it
pytestmark = pytest.mark.xdist_group("gradio")


def test_progress_follows_the_time_budget_or_the_steps():
    from ui.common import progress_html
    timed = progress_html(RunView(run="flowers", state="running", step=120, total=NO_STEP_LIMIT, budget_s=600,
                                  record={"used_s": 150, "eta_s": 450, "img_per_s": 90}))
    assert "2 min 30 s of 10 min 00 s" in timed and "width:25.0%" in timed and "about 7 min 30 s left" in timed
    steps = progress_html(RunView(run="flowers", state="running", step=50, total=200))
    assert "step 50 / 200" in steps and "width:25.0%" in steps
    failed = progress_html(RunView(run="x<y", state="failed", message="disk <full>"))
    assert "x&lt;y" in failed and "class='failed'>disk &lt;full&gt;" in failed


def test_the_gauge_draws_distance_and_floor_and_the_losses_become_two_curves():
    from ui.common import loss_frame, quality_figure
    assert quality_figure([]) is None and loss_frame([]) is None
    fig = quality_figure([{"step": 0, "swd": 600.0, "swd_floor": 40.0, "grid": 3.0, "used_s": 0},
                          {"step": 250, "swd": 90.0, "swd_floor": 40.0, "grid": 1.2, "used_s": 60}])
    dist, grid = fig.axes
    assert [list(line.get_ydata()) for line in dist.lines] == [[600.0, 90.0], [40.0, 40.0]]  # samples, dashed floor
    assert dist.lines[1].get_linestyle() == "--" and list(grid.lines[0].get_ydata()) == [3.0, 1.2]
    stats = [{"step": i, "d_loss": -i, "g_loss": i} for i in range(2000)]
    df = loss_frame(stats)
    assert set(df["curve"]) == {"critic (d_loss)", "generator (g_loss)"} and len(df) <= 2 * 801
    assert df["step"].iloc[-1] == 1999  # the last record is always drawn


def test_switching_the_variant_sets_that_variants_settings_and_fields():
    from ui.train_tab import SAMPLE_LABELS, variant_defaults
    """Conditional models and textures train with different learning rates and batches; the class-zip
    upload and the resolution belong to conditional models only; the sample label fits the mode."""
    for variant in ("cgan", "sgan"):
        resolution, zip_box, sample, batch, *_, augment, lr = variant_defaults(variant, "studio")
        t = TrainConfig.recipe("studio", variant)
        assert (batch, augment, lr) == (t.batch, t.augment, t.lr_g)
        assert resolution["visible"] == zip_box["visible"] == (variant == "cgan")
        assert sample["label"] == SAMPLE_LABELS[variant]
    assert variant_defaults("cgan", "studio")[-1] != variant_defaults("sgan", "studio")[-1]


def test_a_client_holds_a_bounded_number_of_event_streams():
    import asyncio

    from ui.server import StreamGuard

    async def main():
        release, statuses = asyncio.Event(), []

        async def app(scope, receive, send):  # a stream that stays open until released
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        guard = StreamGuard(app, need_login=False, per_client=2)

        async def request(client):
            sent = []

            async def send(msg):
                sent.append(msg)
            scope = {"type": "http", "path": "/gradio_api/heartbeat/x", "client": (client, 1), "headers": [],
                     "method": "GET"}
            await guard(scope, None, send)
            statuses.append((client, sent[0]["status"]))
        tasks = [asyncio.create_task(request("10.0.0.1")) for _ in range(3)] + [asyncio.create_task(request("10.0.0.2"))]
        await asyncio.sleep(0.05)
        assert statuses == [("10.0.0.1", 429)]  # the third stream of one address, at once
        release.set()
        await asyncio.gather(*tasks)
        return statuses
    statuses = asyncio.run(main())
    assert sorted(statuses) == [("10.0.0.1", 200), ("10.0.0.1", 200), ("10.0.0.1", 429), ("10.0.0.2", 200)]


def test_the_style_map_lies_over_the_texture_at_its_aspect_and_only_paint_counts():
    import numpy as np

    from gan_core.texture import style_map_from_canvas, style_map_from_mask
    from ui import texture_view as tv
    from ui.texture_tab import BRUSHES, follow_fields

    tex = np.full((512, 2048, 3), 60, np.uint8)
    value = tv.canvas_value(tex, None)
    bg, layer = value["background"], value["layers"][0]
    assert bg.shape == (128, 512, 4) and layer.shape == (128, 512, 4)  # the texture's 4:1, faded underneath
    assert 140 < bg[0, 0, 0] < 160 and (layer == 0).all()
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    labels = style_map_from_mask(mask)
    value = tv.canvas_value(tex, None, tv.mask_layer(labels, [c for c, _ in BRUSHES], bg.shape[:2]))
    value["composite"] = np.dstack([np.full((128, 512, 3), 200, np.uint8), np.full((128, 512), 255, np.uint8)])
    got = style_map_from_canvas(tv.painted(value), [c for c, _ in BRUSHES])  # the layer, not the texture under it
    assert got.shape == (128, 512) and (got[:, :250] == 0).all() and (got[:, 262:] == 1).all()
    kept = tv.canvas_value(np.zeros((100, 100, 3), np.uint8), value)  # a new texture keeps the paint, resized
    assert kept["layers"][0].shape == (512, 512, 4) and kept["layers"][0][0, -1, 3] > 128
    assert follow_fields(8192, 8192)["value"] == "8192" and follow_fields(96, 64)["value"] is None


def test_a_texture_stops_when_cancelled_and_the_kept_one_stays():
    import numpy as np
    import pytest

    from gan_core.checkpoint import load_generator
    from gan_core.texture import Cancelled, KeptTexture, generate_texture
    from tests.test_texture import DEMO

    G, _ = load_generator(DEMO)
    kept = KeptTexture()
    token = kept.keep(np.zeros((4, 4, 3), np.uint8), {"seed": "1"}, key="a")
    kept.start("me")
    seen = []

    def step(f):
        seen.append(f)
        if len(seen) == 1:  # after the first of two 1024 px tiles
            assert not kept.cancel("someone else")  # only who started it may cancel it
            assert kept.cancel("me")
    with pytest.raises(Cancelled, match="Cancelled"):
        generate_texture(G, 2048, 1024, tileable=True, source=0, on_progress=kept.watch(step))
    assert len(seen) == 1 and kept.take(token, "a") is not None and kept.take(token, "b") is None


def test_an_8192_px_texture_stays_readable_overview_crop_and_viewer_copy():
    import numpy as np

    from gan_core.texture import views
    from ui import texture_view as tv

    img = np.zeros((64, 8192, 3), np.uint8)
    img[:, ::2] = 255  # one-pixel stripes: only a 1:1 view shows them
    overview, crop = views(img)
    assert overview.shape[1] == 1024 and crop.shape == (64, 768, 3) and (crop[0, ::2] != crop[0, 1::2]).all()
    up = tv.viewer_update(img)
    assert up["tex_w"] == 8192 and "shown from a 4096 x 32 px copy" in up["note"] and up["value"].startswith(
        "data:image/jpeg;base64,")
