"""The workspace: run and export names stay inside their folders, zips unpack inside uploads/ only,
and in workshop mode training data stays inside the data root."""
from __future__ import annotations

import os
import time
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_core.errors import ConfigError, DatasetError
from gan_core.io import inside
from gan_core.workspace import Workspace, check_run_name, extract_zip, safe_filename
from tests.helpers import make_class_zip


HYPO = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("bad", ["../evil", "a/b", "..", "with space", "", "x" * 65, "dot.name", "C:\\x"])
def test_run_names_that_are_paths_are_refused(bad):
    with pytest.raises(ConfigError, match="letters, digits|Give the run a name"):
        check_run_name(bad)


def test_export_names_are_sanitised(tmp_path):
    assert safe_filename("../../etc/passwd") == "etc_passwd"
    assert safe_filename("  ") == "export"
    ws = Workspace(tmp_path / "ws")
    p = ws.export_path("../../../tmp/x y", ".png")
    assert p.parent == ws.exports and p.name.startswith("tmp_x_y-")


def test_zip_is_extracted_inside_the_workspace_and_attacks_are_refused(tmp_path):
    ws = Workspace(tmp_path / "ws")
    folder = extract_zip(make_class_zip(tmp_path / "pics.zip", tmp_path), ws.uploads)
    assert folder.parent.parent == ws.uploads and sorted(p.name for p in folder.iterdir()) == ["blue", "green", "red"]

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("ok/a.png", b"x")
        z.writestr("../../escaped.png", b"x")
    with pytest.raises(DatasetError, match="outside"):
        extract_zip(evil, ws.uploads)
    assert not (tmp_path / "escaped.png").exists() and not (ws.root / "escaped.png").exists()

    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("cls/link.png")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="link"):
        extract_zip(link, ws.uploads)

    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("cls/a.png", b"\0" * 5_000_000)  # compresses to a few kB
    with pytest.raises(DatasetError, match="more than"):
        extract_zip(big, ws.uploads, max_bytes=1_000_000)
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"hello")
    with pytest.raises(DatasetError, match="not a readable zip"):
        extract_zip(not_zip, ws.uploads)
    assert [p.name for p in ws.uploads.iterdir()] == ["pics"]  # failed uploads leave nothing


def test_workshop_mode_keeps_training_data_inside_the_data_root(tmp_path):
    root = tmp_path / "shared"
    root.mkdir()
    ws = Workspace(tmp_path / "ws", data_root=root)
    with pytest.raises(DatasetError, match="must be inside"):
        ws.check_data("cgan", str(tmp_path))
    with pytest.raises(DatasetError, match="must be inside"):
        ws.run_config("cgan", str(root / ".." / "elsewhere"))


@HYPO
@given(st.text(max_size=80))
def test_any_run_name_stays_one_folder_inside_runs(tmp_path, text):
    ws = Workspace(tmp_path / "ws")
    try:
        d = ws.run(text).path
    except ConfigError:
        return
    assert d.parent == ws.runs and d.resolve().parent == ws.runs and d.name not in (".", "..")


@HYPO
@given(st.text(max_size=120))
def test_export_names_never_leave_the_exports_folder(tmp_path, text):
    ws = Workspace(tmp_path / "ws")
    p = ws.export_path(text, ".png")
    assert p.parent == ws.exports and p.resolve().parent == ws.exports
    assert all(c.isalnum() and c.isascii() or c in "-_." for c in p.name)


SEGMENTS = ["..", ".", "%2e%2e", "%2E%2E", "~", "inside", "sub", "out-link", "..\\..", "", "INSIDE"]


@HYPO
@given(parts=st.lists(st.sampled_from(SEGMENTS), max_size=8), absolute=st.booleans(), sep=st.sampled_from(["/", "//"]))
def test_workshop_mode_keeps_every_path_inside_the_data_root(tmp_path, parts, absolute, sep):
    root = tmp_path / "shared"
    if not root.exists():
        (root / "inside" / "sub").mkdir(parents=True)
        (tmp_path / "private").mkdir()
        os.symlink(tmp_path / "private", root / "out-link")
    ws = Workspace(tmp_path / "ws", data_root=root)
    text = (str(root) + sep if absolute else "") + sep.join(parts)
    try:
        paths = ws.data_paths("cgan", text)
    except DatasetError as e:
        assert "inside" in str(e) or "Enter the path" in str(e)
        return
    for p in paths:
        assert inside(p, root) or inside(p, ws.uploads)
        assert not inside(p, tmp_path / "private")


@HYPO
@given(st.lists(st.text(alphabet="ab./\\:.C~", min_size=1, max_size=40), min_size=1, max_size=5))
def test_zip_members_never_land_outside_the_uploads_folder(tmp_path, names):
    """Every file and folder the unpacking creates is recorded wherever it would land, so a write
    anywhere on the file system (not only under tmp_path) is seen."""
    import builtins
    import pathlib

    ws = Workspace(tmp_path / "ws")
    z = tmp_path / "up.zip"
    with zipfile.ZipFile(z, "w") as f:
        for i, n in enumerate(names):
            f.writestr(f"{n}{i}.png", b"x")
    made, real_open, real_mkdir = [], builtins.open, pathlib.Path.mkdir

    def watched_open(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+"):
            made.append(os.path.abspath(file))
        return real_open(file, mode, *a, **k)

    def watched_mkdir(self, *a, **k):
        made.append(os.path.abspath(self))
        return real_mkdir(self, *a, **k)
    import gan_core.workspace as workspace_mod
    workspace_mod.open = watched_open  # the module's own open: what extract_zip writes with
    pathlib.Path.mkdir = watched_mkdir
    try:
        extract_zip(z, ws.uploads)
    except DatasetError:
        pass
    finally:
        del workspace_mod.open
        pathlib.Path.mkdir = real_mkdir
    assert made and all(inside(p, ws.uploads) for p in made), made


def test_runs_are_listed_oldest_first_so_the_last_is_the_one_trained_last(class_dir, tmp_path):
    from gan_core.train import resume, train
    from tests.conftest import tiny_cgan

    ws = Workspace(tmp_path / "ws")
    for name in ("zebra", "apple"):
        train(tiny_cgan(class_dir, steps=2), ws.run(name).path)
    (ws.runs / "empty").mkdir()  # no checkpoint: not listed
    assert ws.run_names() == ["zebra", "apple"]
    resume(ws.run("zebra").path, steps=4)
    assert ws.run_names() == ["apple", "zebra"]
    assert ws.find_run("zebra").latest_step() == 4 and ws.find_run("../x") is None and ws.find_run("nope") is None


@pytest.mark.parametrize("text", ["/tmp/a\0b", "/" + "x" * 300, "/tmp/" + "deep/" * 1000])
def test_paths_no_file_system_can_hold_are_a_message(tmp_path, text):
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(DatasetError, match="NUL character|longer than a path can be"):
        ws.check_data("cgan", text)


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    return path


def test_zips_that_cannot_be_unpacked_are_refused_naming_the_entry(tmp_path):
    ws = Workspace(tmp_path / "ws")
    cases = {
        "long name": _zip(tmp_path / "long.zip", [("c/" + "n" * 300 + ".png", b"x")]),
        "deep": _zip(tmp_path / "deep.zip", [("d/" * 1950 + "a.png", b"x")]),
        "clash": _zip(tmp_path / "clash.zip", [("c/a.png", b"x"), ("c/a.png/b.png", b"y")]),
    }
    crc = tmp_path / "crc.zip"
    _zip(crc, [("c/a.png", b"hello image bytes" * 100)])
    data = bytearray(crc.read_bytes())
    data[data.index(b"hello")] ^= 0xFF  # the stored CRC no longer matches
    crc.write_bytes(bytes(data))
    cases["bad crc"] = crc
    for what, z in cases.items():
        with pytest.raises(DatasetError, match="the upload was refused") as e:
            extract_zip(z, ws.uploads)
        assert len(str(e.value)) < 400, what
    assert list(ws.uploads.iterdir()) == []  # nothing half-unpacked is left


def test_unpacked_uploads_stay_within_the_workspace_quota(tmp_path):
    ws = Workspace(tmp_path / "ws")
    z = _zip(tmp_path / "pics.zip", [(f"c/{i}.png", bytes(1000)) for i in range(3)])
    ws.uploads_quota = 5000
    first = ws.import_zip(str(z))
    assert sorted(p.name for p in first.rglob("*.png")) == ["0.png", "1.png", "2.png"]
    with pytest.raises(DatasetError, match="more than"):  # 3 kB more would pass the 5 kB in all
        ws.import_zip(str(z))
    ws.uploads_quota = 3000
    with pytest.raises(DatasetError, match="hold 0.0 GB already .* Delete folders"):
        ws.import_zip(str(z))
    assert [p.name for p in ws.uploads.iterdir()] == ["pics"]


def test_old_uploads_no_run_trains_on_are_removed_and_the_others_kept(class_dir, tmp_path):
    from gan_core.train import train
    from tests.conftest import tiny_cgan

    ws = Workspace(tmp_path / "ws")
    z = _zip(tmp_path / "pics.zip", [(f"{c}/{i}.png", bytes(100)) for c in ("a", "b") for i in range(2)])
    unused, trained, recent = (ws.import_zip(str(z)) for _ in range(3))
    import shutil
    shutil.rmtree(trained)
    shutil.copytree(class_dir, trained)  # a run trains on this upload
    train(tiny_cgan(str(trained), steps=2), ws.run("on-upload").path)
    week_ago = time.time() - 8 * 86400
    for folder in (unused, trained):
        os.utime(folder, (week_ago, week_ago))
    assert ws.clean_uploads() == [unused.name]
    assert not unused.exists() and trained.is_dir() and recent.is_dir()


def test_the_web_servers_temporary_folder_starts_empty_and_private(tmp_path):
    ws = Workspace(tmp_path / "ws")
    first = ws.fresh_web_temp()
    (first / "abc").mkdir()
    (first / "abc" / "sheet.webp").write_bytes(b"an earlier session's picture")
    again = ws.fresh_web_temp()
    assert again == first and list(again.iterdir()) == []
    assert again.stat().st_mode & 0o777 == 0o700
    assert inside(again, ws.root)


def test_export_names_never_reuse_a_file_or_set_already_in_exports(tmp_path, monkeypatch):
    import gan_core.workspace as W
    monkeypatch.setattr(W.time, "strftime", lambda fmt: "20260101-000000")  # every name in the same second
    ws = Workspace(tmp_path / "ws")
    first = ws.export_set_name("wall")
    assert first == "wall-20260101-000000"
    (ws.exports / f"{first}_height.png").write_bytes(b"x")  # a set's map alone takes its name
    second = ws.export_set_name("wall")
    assert second == "wall-20260101-000000-2"
    (ws.exports / second).mkdir()  # so does a folder of variations
    assert ws.export_set_name("wall") == "wall-20260101-000000-3"
    png = ws.export_path("wall", ".png")
    assert png.name == "wall-20260101-000000.png"  # a single file only avoids files of its own suffix
    png.write_bytes(b"x")
    assert ws.export_path("wall", ".png").name == "wall-20260101-000000-2.png"


def test_atomic_writes_give_files_the_usual_permissions_not_the_temporary_files(tmp_path):
    import os
    import stat

    from gan_core.io import atomic_write
    new = tmp_path / "picture.png"
    atomic_write(new, b"one")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask  # as open() would make it, not 0600
    new.chmod(0o640)
    atomic_write(new, b"two")  # a replaced file keeps the permissions it had
    assert stat.S_IMODE(new.stat().st_mode) == 0o640 and new.read_bytes() == b"two"
    from safetensors.torch import load_file, save_file
    import torch
    weights = tmp_path / "w.safetensors"  # a writer that makes its own owner-only file in the temporary's place
    atomic_write(weights, lambda p: save_file({"w": torch.ones(2)}, p))
    assert stat.S_IMODE(weights.stat().st_mode) == 0o666 & ~umask and load_file(str(weights))["w"].sum() == 2
