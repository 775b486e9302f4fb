"""Bad input on the command line, rerun: every case should end with a one-line `error: ...`, exit
status 2 and no traceback (or, where it says so, succeed without losing anything).

    python bench/attack_rerun.py            # prints a table; exit status 1 if any case misbehaves

Each case runs `python -m gan_core ...` (or studio.py) in a fresh process on tiny data and tiny
models made in a temporary folder. The studio's cases (web server guards against a live server,
uploads, zips, painted canvases) are replayed by the tests named in STUDIO_CASES, which this script
runs with pytest and reports case by case.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
TINY = ["--res", "32", "--g-channels", "4", "--d-channels", "4", "--batch", "4"]


def run(args: list[str], expect: int = 2, limit_bytes: int | None = None, script: str | None = None) -> dict:
    def limits():
        if limit_bytes:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    cmd = [sys.executable, script] if script else [sys.executable, "-m", "gan_core"]
    p = subprocess.run(cmd + args, capture_output=True, text=True, cwd=REPO, timeout=600, preexec_fn=limits,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    said = next((line for line in lines if line.startswith("error") or ": error:" in line), "")
    ok = p.returncode == expect and "Traceback" not in p.stderr and (expect == 0 or bool(said))
    return {"code": p.returncode, "traceback": "Traceback" in p.stderr, "said": said[:150], "ok": ok}


def make_data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, rgb in {"red": (220, 40, 40), "blue": (40, 60, 220)}.items():
        (root / name).mkdir(parents=True)
        for i in range(6):
            arr = np.clip(np.array(rgb) + rng.normal(0, 12, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def with_config(src: Path, dst: Path, text: str) -> Path:
    dst.mkdir()
    (dst / "G_ema.safetensors").write_bytes((src / "G_ema.safetensors").read_bytes())
    (dst / "config.json").write_text(text)
    return dst


# studio-side attacks -> the tests that replay them (each asserts a notice or a refusal, nothing lost)
STUDIO_CASES = {
    "studio: NUL byte or over-long path in a data field": "tests/test_workspace.py::test_paths_no_file_system_can_hold_are_a_message",
    "studio: zips with a 300-character name, a file/folder clash, a bad CRC, 1950 levels":
        "tests/test_workspace.py::test_zips_that_cannot_be_unpacked_are_refused_naming_the_entry",
    "studio: zip slip (every write recorded, wherever it lands)":
        "tests/test_workspace.py::test_zip_members_never_land_outside_the_uploads_folder",
    "studio: a small zip that unpacks past the workspace quota":
        "tests/test_workspace.py::test_unpacked_uploads_stay_within_the_workspace_quota",
    "studio: old unpacked uploads pile up": "tests/test_workspace.py::test_old_uploads_no_run_trains_on_are_removed_and_the_others_kept",
    "studio: painted style map on a tileable texture under 128 px":
        "tests/test_texture.py::test_a_painted_map_blends_on_canvases_smaller_than_the_blur",
    "studio: a 121-megapixel painted canvas": "tests/test_texture.py::test_a_huge_painted_canvas_is_read_at_a_bounded_size",
    "studio: 4 x 150 MB in one upload request": "tests/test_studio.py::test_uploads_over_the_limit_are_refused",
    "studio: files beyond exports, mangled paths": "tests/test_studio.py::test_only_exported_files_are_served",
    "studio: a dataset image by mangled paths": "tests/test_studio.py::test_mangled_paths_to_a_dataset_image_are_refused",
    "studio: another Host header (DNS rebinding)": "tests/test_studio.py::test_requests_addressed_to_another_host_get_nothing",
    "workshop: heartbeat without a password, login flood, page's API list":
        "tests/test_studio.py::test_workshop_mode_asks_for_the_password_and_limits_guesses",
    "workshop: one-character password, no data root": "tests/test_studio.py::test_workshop_mode_needs_a_password_and_a_data_root",
    "workshop: thousands of event streams from one client": "tests/test_ui.py::test_a_client_holds_a_bounded_number_of_event_streams",
    "studio: a request flood while Stop is pressed": "tests/test_studio.py::test_the_request_queue_is_bounded_and_stop_never_waits_in_it",
    "studio: two Starts at the same moment": "tests/test_studio.py::test_two_clients_start_at_once_one_trains_the_other_is_told_busy_and_generating_goes_on",
    "studio: a bad model folder among good ones": "tests/test_checkpoint.py::test_one_bad_run_folder_hides_no_other_model",
    "studio: a 900-level folder to scan": "tests/test_data.py::test_a_deep_folder_is_scanned_without_resolving_every_level",
}


def studio_cases(tmp: Path) -> list[tuple[str, dict]]:
    """Runs the tests in STUDIO_CASES in one pytest process and reads each one's outcome."""
    import xml.etree.ElementTree as ET
    report = tmp / "studio.xml"
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                        *STUDIO_CASES.values()], capture_output=True, text=True, cwd=REPO, timeout=1800)
    outcome = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "").split("[")[0]
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            outcome[node] = "failed" if failed or outcome.get(node) == "failed" else ("skipped" if skipped else "passed")
    out = []
    for name, node in STUDIO_CASES.items():
        got = outcome.get(node, "not run" if p.returncode else "missing")
        out.append((name, {"code": "-", "traceback": False, "said": f"{node.split('::')[1]}: {got}",
                           "ok": got == "passed"}))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-studio", action="store_true", help="only the command-line cases")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    tmp = Path(tempfile.mkdtemp(prefix="attacks-"))
    data = make_data(tmp / "data")
    model = tmp / "model"
    assert run(["train", "cgan", str(data), "--out", str(tmp / "run"), "--steps", "4", "--ckpt-every", "2", *TINY],
               expect=0)["ok"]
    assert run(["export", str(tmp / "run"), "--out", str(model), "--fp32"], expect=0)["ok"]
    good = json.loads((model / "config.json").read_text())
    cases: list[tuple[str, dict]] = []

    def config_case(name: str, change):
        cfg = json.loads(json.dumps(good))
        text = change(cfg)
        folder = with_config(model, tmp / f"cfg-{len(cases)}", text if isinstance(text, str) else json.dumps(cfg))
        cases.append((f"config.json: {name}", run(["sample", str(folder), "--out", str(tmp / "x.png")])))

    config_case("NaN", lambda c: json.dumps(c).replace('"nz": 100', '"nz": NaN'))
    config_case("Infinity", lambda c: json.dumps(c).replace('"nz": 100', '"nz": Infinity'))
    config_case("1e400", lambda c: json.dumps(c).replace('"nz": 100', '"nz": 1e400'))
    config_case("a 5000-digit number", lambda c: json.dumps(c).replace('"nz": 100', '"nz": ' + "9" * 5000))
    config_case("deep nesting", lambda c: "[" * 100_000 + "]" * 100_000)
    config_case('"data": 5', lambda c: c.update(data=5))
    config_case("a network too large to allocate", lambda c: c["model"].update(g_channels=10**6))

    from safetensors.torch import load_file, save_file
    for name, damage in (("float64 weights of 1e300", lambda t, k: t.update({k: t[k].double().fill_(1e300)})),
                         ("a BatchNorm variance of -1", lambda t, k: t.update(
                             {n: v.fill_(-1.0) for n, v in t.items() if n.endswith("running_var")}))):
        folder = tmp / f"weights-{len(cases)}"
        folder.mkdir()
        (folder / "config.json").write_text((model / "config.json").read_text())
        t = load_file(str(model / "G_ema.safetensors"))
        damage(t, next(k for k in sorted(t) if t[k].is_floating_point()))
        save_file({k: v.contiguous() for k, v in t.items()}, str(folder / "G_ema.safetensors"))
        cases.append((f"weights: {name}", run(["sample", str(folder), "--out", str(tmp / "x.png")])))

    cases.append(("sample --class red=nan", run(["sample", str(model), "--class", "red=nan", "--out", str(tmp / "x.png")])))
    cases.append(("sample --n 100000", run(["sample", str(model), "--n", "100000", "--out", str(tmp / "x.png")])))
    cases.append(("train --seed 2^63", run(["train", "cgan", str(data), "--out", str(tmp / "r1"), "--seed", str(2**63)])))
    cases.append(("train --gp-lambda nan", run(["train", "cgan", str(data), "--out", str(tmp / "r2"), "--gp-lambda", "nan"])))
    cases.append(("train --diversity inf", run(["train", "cgan", str(data), "--out", str(tmp / "r3"), "--diversity", "inf"])))
    tex = tmp / "tex.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(tex)
    cases.append(("train sgan --batch 4096 --patch 512",
                  run(["train", "sgan", str(tex), "--out", str(tmp / "r4"), "--batch", "4096", "--patch", "512"])))
    cases.append(("check a path with a 300-character name", run(["check", str(tmp) + "/" + "x" * 300])))
    cases.append(("studio.py --host ::1", run(["--host", "::1", "--workspace", str(tmp / "ws")],
                                              script=str(REPO / "studio.py"))))
    cases.append(("a real write failure (files over 20 kB refused)",
                  run(["train", "cgan", str(data), "--out", str(tmp / "r5"), "--steps", "4", *TINY], limit_bytes=20_000)))

    # state with the right types but wrong optimizer groups: resume falls back to the older checkpoint
    import torch
    newest = sorted((tmp / "run" / "checkpoints").iterdir())[-1]
    st = torch.load(newest / "train_state.pt", weights_only=True)
    st["opt_g"]["param_groups"].append(dict(st["opt_g"]["param_groups"][0]))
    torch.save(st, newest / "train_state.pt")
    res = run(["resume", str(tmp / "run"), "--steps", "6"], expect=0)
    cases.append(("resume past a training state with wrong optimizer groups", res))

    # two trainings into one folder at the same moment: one trains, the other is turned away
    procs = [subprocess.Popen([sys.executable, "-m", "gan_core", "train", "cgan", str(data), "--out",
                               str(tmp / "both"), "--steps", "30", *TINY], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
             for _ in range(2)]
    outs = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    codes = sorted(o[2] for o in outs)
    refused = next((o[1] for o in outs if o[2] == 2), "")
    cases.append(("two trainings into one --out at once",
                  {"code": codes, "traceback": any("Traceback" in o[1] for o in outs),
                   "said": next((line for line in refused.splitlines() if line.startswith("error")), "")[:150],
                   "ok": codes == [0, 2] and "being trained right now" in refused}))

    # SIGTERM saves like Ctrl-C
    p = subprocess.Popen([sys.executable, "-m", "gan_core", "train", "cgan", str(data), "--out", str(tmp / "term"),
                          "--steps", "100000", "--ckpt-every", "100000", *TINY], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    t0 = time.time()
    while not (tmp / "term" / "stats.jsonl").exists() and time.time() - t0 < 300:
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=300)
    saved = sorted((tmp / "term" / "checkpoints").iterdir())[-1].name if (tmp / "term" / "checkpoints").exists() else ""
    cases.append(("SIGTERM during training", {"code": p.returncode, "traceback": "Traceback" in err,
                                              "said": next((line for line in out.splitlines() if "stopped" in line), ""),
                                              "ok": p.returncode == 0 and "stopped at step" in out
                                              and saved != "step_00000000"}))

    if not args.skip_studio:
        cases += studio_cases(tmp)

    print("| case | exit status | traceback | first line said | as it should be |")
    print("|---|---|---|---|---|")
    for name, r in cases:
        said = r["said"].replace("|", "/")
        print(f"| {name} | {r['code']} | {'yes' if r['traceback'] else 'no'} | {said} | {'yes' if r['ok'] else 'NO'} |")
    bad = [name for name, r in cases if not r["ok"]]
    print(f"\n{len(cases) - len(bad)} of {len(cases)} cases as they should be" + (f"; not: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
