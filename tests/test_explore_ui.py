"""Explore's handlers without a server: the blend kept across models by class name, the notices
on the class sliders, the session's seed generations, and model names in the workspace."""
from __future__ import annotations

import pytest

from gan_core.errors import StudioError
from gan_core.explore import Session
from gan_core.breeding import Specimen
from gan_core.jobs import Jobs
from gan_core.workspace import Workspace
from tests.helpers import make_model_folder

pytestmark = pytest.mark.xdist_group("gradio")  # ui/ loads gradio: see tests/test_ui.py


@pytest.fixture
def ctx(tmp_path):
    from ui.common import Context
    models = tmp_path / "models"
    make_model_folder(models / "colours")
    make_model_folder(models / "warm", class_names=("green", "orange", "red"))
    return Context(Workspace(tmp_path / "ws", models_dir=models), Jobs())


def _values(out):
    from ui.explore_tab import MAX_CLASS_SLIDERS
    return [u.get("value") for u in out[:MAX_CLASS_SLIDERS]]


def test_switching_models_keeps_the_weights_of_classes_with_the_same_name(ctx):
    from ui.explore_tab import MAX_CLASS_SLIDERS, open_model
    out = open_model(ctx, "colours", None, *[0.0] * MAX_CLASS_SLIDERS)
    assert _values(out)[:3] == [1.0, 0.0, 0.0] and out[-1] == ["blue", "green", "red"]
    out = open_model(ctx, "warm", ["blue", "green", "red"], 0.2, 0.5, 0.3, *[0.0] * 5)
    assert _values(out)[:3] == [0.5, 0.0, 0.3]  # green and red kept, orange is new
    assert [u.get("label") for u in out[:3]] == ["green", "orange", "red"]
    out = open_model(ctx, "colours", ["x", "y"], 1.0, 1.0, *[0.0] * 6)
    assert _values(out)[:3] == [1.0, 0.0, 0.0]  # nothing shared: the first class at 1


def test_the_blend_hint_says_why_a_lone_slider_changes_nothing():
    from ui.explore_tab import blend_hint
    names = ["blue", "green", "red"]
    assert "Only **green** is above zero" in blend_hint(names, [0, 0.4, 0])
    assert "All class sliders are at 0" in blend_hint(names, [0, 0, 0])
    assert blend_hint(names, [0.2, 0.4, 0]).startswith("Blend: blue, green")


def test_models_by_name_or_label_and_a_clear_message_for_others(ctx, tmp_path):
    folder = str((tmp_path / "models" / "colours").resolve())
    assert ctx.ws.model_path("colours", "cgan") == folder == ctx.ws.model_path("colours  (demo)", "cgan")
    assert ctx.ws.load_model("warm", "cgan").class_names == ["green", "orange", "red"]
    with pytest.raises(StudioError, match="no model named 'nope'; the models are: colours, warm"):
        ctx.ws.load_model("nope", "cgan")


def test_seed_generations_replace_each_other_but_follow_bred_ones():
    s = Session()
    sp = lambda k: [Specimen([float(k)], {"a": 1.0}, f"seed {k}", k)]  # noqa: E731
    s.show_seeds(sp(0), "seeds 0")
    s.show_seeds(sp(1), "seeds 1")  # moving a slider is not a new generation
    assert len(s.lineage.steps) == 1 and s.specimens[0].z == [1.0]
    s.pick(0)
    s.breed(["a"], 2, 0.5, 0.0, 0)
    assert len(s.specimens) == 3 and s.lineage.steps[-1]["what"] == "children of seed 1"
    s.show_seeds(sp(2), "seeds 2")  # after a bred generation: a new one, so Undo goes back to the children
    assert len(s.lineage.steps) == 3
    s.undo()
    assert s.lineage.steps[s.lineage.at]["what"] == "children of seed 1"


def test_a_new_model_starts_a_new_session_and_an_opened_export_survives_its_opening(ctx):
    from ui import explore_breed as B
    from ui.explore_tab import draw, draw_opened
    view = (0, 1, 0.0, "slerp", 1.0, 2)
    dirs = [0.0] * B.N_DIRECTIONS
    out = draw(ctx, "colours", *view, None, *dirs, 1.0, 0.0, 0.0)
    s = out[6]
    s.pick(1)
    B.breed(ctx, "colours", 8, 0.5, 0.0, 0, s, *dirs)
    assert len(s.lineage.steps) == 2
    out = draw(ctx, "warm", *view, s, *dirs, 1.0, 0.0, 0.0)  # another model: its own lineage
    assert out[6] is not s and len(out[6].lineage.steps) == 1 and out[6].model.endswith("warm")
    s2 = out[6]
    s2.restore([Specimen(s2.specimens[1].z, {"green": 1.0}, "kept")], "opened export")
    s2.keep_next = True
    out = draw_opened(ctx, "warm", *view, s2, *dirs, 1.0, 0.0, 0.0)
    assert [c for _, c in out[1]["value"]] == ["▶ kept"]  # the model's opening keeps the opened picture
    out = draw(ctx, "warm", *view, s2, *dirs, 1.0, 0.0, 0.0)
    assert [c for _, c in out[1]["value"]] == ["seed 0", "seed 1"]  # a slider afterwards draws seeds again
