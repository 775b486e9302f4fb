"""Explore latency: server-side time to make 16 images after a class-blend slider moves.

Calls ui.explore_tab.images, the handler the Explore tab's class sliders call, with the model
already loaded (the first call, which loads it, is reported apart), --calls times with a
different blend each time (class 1 slides down while class 2 slides up, as a user drags), and
reports the median and 90th percentile. It also splits a call into its parts (latents from the
seeds, the generator, the grid) and times the PNG encoding the web page's image component then
does (Gradio encodes the returned array as PNG).

The studio lays 16 images out as 8 x 2 (at most 8 per row); the work is that of a 4 x 4 grid.

--model is a run or model folder (default checkpoints/demo-classes). If the default is missing,
an untrained generator of the default architecture is timed instead (its speed does not depend on
its weights) and the script says so.

--levers times the generator call alone under: torch.no_grad instead of inference_mode, one
thread, channels-last input/weights, and torch.compile (compile time reported).

    python bench/explore_latency.py
    python bench/explore_latency.py --model runs/demo --calls 100 --levers
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from _common import REPO, OtherLoad, command_line, load_average, machine, md_table, median, percentile, run_in_temp_dir

import torch

DEFAULT_MODEL = REPO / "checkpoints" / "demo-classes"
DEMO_CLASSES = ["brick", "building", "flowers", "grass", "gravel"]


def untrained_model(folder: Path) -> Path:
    """A model folder (config.json + G_ema.safetensors) with an untrained default generator."""
    from safetensors.torch import save_file

    from gan_core.checkpoint import write_json
    from gan_core.config import CGANConfig, RunConfig, TrainConfig
    from gan_core.nets import build_generator

    cfg = RunConfig("cgan", CGANConfig(class_names=DEMO_CLASSES), TrainConfig())
    torch.manual_seed(0)
    G = build_generator(cfg)
    folder.mkdir(parents=True)
    write_json(folder / "config.json", cfg.to_dict())
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(folder / "G_ema.safetensors"))
    return folder


def timed(fn, n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def round_trips(tmp: Path, model: Path, n: int, calls: int) -> list[float]:
    """Seconds per /show call through a launched studio on this machine, with every picture
    downloaded (what the page does after a slider is let go, less the browser's drawing)."""
    import studio
    from gradio_client import Client

    from gan_core.jobs import Jobs
    from ui import build_app, launch_app

    demo = build_app(tmp / "ws-server", models_dir=model.parent, jobs=Jobs())
    port = studio.free_port()
    launch_app(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        k = [0]

        def one():
            k[0] += 1
            c.predict(model=model.name, seed=k[0] % 50, n=n, classes="", api_name="/show")
        return timed(one, calls)
    finally:
        demo.close()


def browser_round_trips(tmp: Path, model: Path, n: int, calls: int) -> list[tuple[float, float]]:
    """(new pictures in the page, all of them loaded) in seconds after a slider's release, timed
    inside headless Chromium (performance.now): the page sets the Truncation box and sends the
    release event Gradio listens to, then watches the gallery's <img> elements."""
    import studio
    from playwright.sync_api import sync_playwright

    from gan_core.jobs import Jobs
    from ui import build_app, launch_app

    demo = build_app(tmp / "ws-browser", models_dir=model.parent, jobs=Jobs())
    port = studio.free_port()
    launch_app(demo, port=port, prevent_thread_lock=True, quiet=True)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    js = """async ([v]) => {
      const g = document.querySelectorAll('.explore-gallery')[0];
      const old = [...g.querySelectorAll('img')].map(i => i.src);
      const box = document.querySelector('input[aria-label="number input for Truncation"]');
      const t0 = performance.now();
      let shown = null;
      box.value = v; box.dispatchEvent(new Event('input', {bubbles: true}));
      box.dispatchEvent(new PointerEvent('pointerup', {bubbles: true}));
      while (performance.now() - t0 < 30000) {
        const imgs = [...g.querySelectorAll('button.thumbnail-item img')];
        if (shown === null && imgs.length && imgs.every(i => !old.includes(i.src))) shown = performance.now() - t0;
        if (shown !== null && imgs.every(i => i.complete && i.naturalWidth > 0)) return [shown, performance.now() - t0];
        await new Promise(r => setTimeout(r, 2));
      }
      return [NaN, NaN];
    }"""
    out = []
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            pg = b.new_page(viewport={"width": 1366, "height": 768})
            pg.set_default_timeout(60_000)
            pg.goto(f"http://127.0.0.1:{port}/")
            pg.get_by_role("tab", name="Explore").click()
            pg.get_by_text(f"{model.name}: ").first.wait_for()
            box = pg.get_by_label("number input for Images")
            box.fill(str(n))
            box.press("Enter")
            pg.wait_for_timeout(2000)
            for k in range(calls + 3):
                shown, loaded = pg.evaluate(js, [f"{0.5 + 0.02 * (k % 20):.2f}"])
                if k >= 3:
                    out.append((shown / 1000, loaded / 1000))
            b.close()
    finally:
        demo.close()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="run or model folder of a conditional model "
                   "(default: %(default)s)")
    p.add_argument("--calls", type=int, default=50, help="timed calls (default %(default)s)")
    p.add_argument("--n", type=int, default=16, help="images per call (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--levers", action="store_true", help="also time the generator under the levers")
    p.add_argument("--no-server", dest="server", action="store_false",
                   help="skip the round trips through a launched studio (gradio_client)")
    p.add_argument("--no-browser", dest="browser", action="store_false",
                   help="skip the round trips in headless Chromium (/usr/bin/chromium)")
    a = p.parse_args(argv)
    return run_in_temp_dir(a, "bench_explore_", run)


def run(a, tmp: Path) -> int:
    print(f"machine: {machine()}")
    print(f"command: {command_line()}")
    model = Path(a.model).expanduser().resolve()
    note = ""
    if not model.exists():
        if model != DEFAULT_MODEL.resolve():
            print(f"error: {model} does not exist; give a run or model folder with --model", file=sys.stderr)
            return 2
        model = untrained_model(tmp / "models" / "untrained-default")
        note = (f"{DEFAULT_MODEL.relative_to(REPO)} is missing: timed an untrained generator of the default "
                "architecture (5 classes) instead; the timing does not depend on the weights.")
        print("note: " + note)

    t0 = time.perf_counter()
    from ui import explore_tab  # the web app's tab: its import loads gradio
    from ui.common import Context
    from gan_core import sampling
    from gan_core.jobs import Jobs
    from gan_core.workspace import Workspace
    import_s = time.perf_counter() - t0

    from gan_core.checkpoint import read_config, resolve_model_dir

    ctx = Context(Workspace(tmp / "workspace", models_dir=model.parent), Jobs())
    folder = resolve_model_dir(model)
    cfg = read_config(folder)
    names = cfg.model.class_names
    k = len(names)
    load0 = load_average()

    def weights(i: int) -> list[float]:
        w = [0.0] * k
        f = (i % 20) / 19
        w[0] = round(1 - f, 3)
        if k > 1:
            w[1] = round(f, 3)
        if w[0] == 0 and (k == 1 or w[1] == 0):
            w[0] = 1.0
        return w

    t0 = time.perf_counter()  # the first call loads the model, as after picking it in the page
    explore_tab.images(ctx, str(model), 0, 1, 0.0, "lerp", 1.0, a.n, *weights(0))
    first_s = time.perf_counter() - t0

    i = [0]

    def call():
        i[0] += 1
        return explore_tab.images(ctx, str(model), 0, 1, 0.0, "lerp", 1.0, a.n, *weights(i[0]))

    ol = OtherLoad().start()
    calls = timed(call, a.calls)
    ol.stop()
    img = call()

    # the handler the sliders call now: the pictures for the gallery (one per image) and the strip
    from ui import explore_breed
    state = explore_breed.session(None)
    dirs0 = [0.0] * explore_breed.N_DIRECTIONS

    def draw():
        i[0] += 1
        return explore_tab.draw(ctx, str(model), 0, 1, 0.0, "lerp", 1.0, a.n, state, *dirs0, *weights(i[0]))

    ol2 = OtherLoad().start()
    draw_s = timed(draw, a.calls)
    ol2.stop()
    drawn = draw()

    def gallery_png():
        from PIL import Image
        for pic, _ in drawn[1]["value"]:
            Image.fromarray(pic).save(io.BytesIO(), format="PNG")
        Image.fromarray(drawn[0]).save(io.BytesIO(), format="PNG")

    gallery_png_s = timed(gallery_png, a.calls)
    server_s = round_trips(tmp, model, a.n, a.calls) if a.server else []
    browser_s = browser_round_trips(tmp, model, a.n, a.calls) if a.browser else []

    def png():
        buf = io.BytesIO()
        from PIL import Image
        Image.fromarray(img).save(buf, format="PNG")

    png_s = timed(png, a.calls)

    G = ctx.ws.load_model(str(model), "cgan").G
    w = sampling.class_weights(names, {names[0]: 0.4, names[-1]: 0.6})
    view = sampling.View({names[0]: 1.0}, 0, 1, 0.0, "lerp", 1.0, a.n)
    lat_s = timed(lambda: view.latents(cfg.model.nz), a.calls)
    z = view.latents(cfg.model.nz)
    gen_s = timed(lambda: sampling.generate(G, z, w), a.calls)
    out = sampling.generate(G, z, w)
    grid_s = timed(lambda: sampling.grid(out, 8), a.calls)
    load1 = load_average()

    ms = lambda xs: f"{1000 * median(xs):.1f}"  # noqa: E731
    p90 = lambda xs: f"{1000 * percentile(xs, 90):.1f}"  # noqa: E731
    rows = [["`explore_tab.images` (the slider's handler)", ms(calls), p90(calls)],
            ["  of which: latents from the seeds (`View.latents`)", ms(lat_s), p90(lat_s)],
            ["  of which: generator (`sampling.generate`)", ms(gen_s), p90(gen_s)],
            ["  of which: grid (`sampling.grid`)", ms(grid_s), p90(grid_s)],
            ["PNG encoding of the returned grid (done by the page's image component)", ms(png_s), p90(png_s)],
            ["handler + PNG encoding (medians added)", f"{1000 * (median(calls) + median(png_s)):.1f}", ""],
            ["`explore_tab.draw` (the sliders' handler now: gallery pictures + strip)", ms(draw_s), p90(draw_s)],
            ["PNG encoding of its 16 gallery pictures and the strip", ms(gallery_png_s), p90(gallery_png_s)],
            ["draw + PNG encoding (medians added)", f"{1000 * (median(draw_s) + median(gallery_png_s)):.1f}", ""]]
    if browser_s:
        shown_s, loaded_s = [x for x, _ in browser_s], [y for _, y in browser_s]
        rows.append(["slider released -> new gallery pictures in the page (headless Chromium)", ms(shown_s),
                     p90(shown_s)])
        rows.append(["slider released -> all of them loaded and drawn", ms(loaded_s), p90(loaded_s)])
    if server_s:
        rows.append(["round trip through the running studio (gradio_client, `/show`, all pictures fetched)",
                     ms(server_s), p90(server_s)])
    print("\n## Explore latency (`bench/explore_latency.py`)\n")
    print(f"Machine: {machine()}. Load average {load0:.2f} at the start, {load1:.2f} at the end; other processes "
          f"used {100 * ol.share:.0f}% of the CPU during the timed handler calls.\n")
    print(f"Command: `{command_line()}`\n")
    if note:
        print(f"Model: {note}\n")
    else:
        shown = Path(model).resolve()
        shown = shown.relative_to(REPO) if shown.is_relative_to(REPO) else shown  # no machine's own paths
        print(f"Model: `{shown}` ({cfg.model.resolution} px, {k} classes, checkpoint `{folder.name}`).\n")
    print(f"{a.n} images of {cfg.model.resolution}x{cfg.model.resolution} per call, {a.calls} timed calls after 3 "
          f"warm-up calls; milliseconds.\n")
    print(md_table(["what", "median ms", "p90 ms"], rows))
    print(f"\nFirst call (loads the model from disk): {1000 * first_s:.0f} ms; importing the studio module "
          f"(gradio): {import_s:.1f} s.")
    verdict = "met" if median(calls) < 0.05 else "missed"
    print(f"\nTarget (median under 50 ms): **{verdict}** ({ms(calls)} ms).")
    worst = median([y for _, y in browser_s]) if browser_s else median(draw_s) + median(gallery_png_s)
    print(f"Target (slider release to new pictures under 250 ms with {a.n} images): "
          f"**{'met' if worst < 0.25 else 'missed'}** ({1000 * worst:.1f} ms, "
          f"{'in the browser' if browser_s else 'handler + encoding'}; other processes used "
          f"{100 * ol2.share:.0f}% of the CPU during the draw calls).")

    if a.levers:
        rows = [["`sampling.generate` as shipped (inference_mode)", ms(gen_s), p90(gen_s), ""]]
        dev_emb = G.class_embedding(w).expand(z.shape[0], -1)

        def plain_no_grad():
            with torch.no_grad():
                G(z, embedding=dev_emb)

        t = timed(plain_no_grad, a.calls)
        rows.append(["torch.no_grad instead of inference_mode", ms(t), p90(t), ""])
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        t = timed(lambda: sampling.generate(G, z, w), a.calls)
        torch.set_num_threads(n)
        rows.append([f"1 thread (instead of {n})", ms(t), p90(t), ""])
        Gc = G.to(memory_format=torch.channels_last)
        t = timed(lambda: sampling.generate(Gc, z, w), a.calls)
        G.to(memory_format=torch.contiguous_format)
        rows.append(["channels-last weights", ms(t), p90(t), ""])
        t0 = time.perf_counter()
        Gk = torch.compile(G)
        with torch.inference_mode():
            Gk(z, embedding=dev_emb)
        comp_s = time.perf_counter() - t0

        def compiled():
            with torch.inference_mode():
                Gk(z, embedding=dev_emb)

        t = timed(compiled, a.calls)
        rows.append(["torch.compile of the generator", ms(t), p90(t), f"compile {comp_s:.1f} s"])
        print("\nLevers (the generator call alone):\n")
        print(md_table(["variant", "median ms", "p90 ms", "note"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
