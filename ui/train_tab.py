"""The Train tab: check a data folder, start / stop / resume one run in the background, and watch it
(progress, samples, quality gauge, losses)."""
from __future__ import annotations

from functools import partial

import gradio as gr

from gan_core import options
from gan_core.config import AUGMENTS, CRITIC_WIDTH, DEFAULT_RECIPE, RESOLUTIONS, SHORT_CRITIC, SHORT_KIMG
from gan_core.train import speed_note

from .common import LOSS_COLORS, MAX_UPLOAD_MB, Context, errors_as_messages, loss_frame, progress_html, \
    quality_figure

RECIPE_CHOICES = [("Studio (recommended)", "studio"),
                  ("Fast (older networks, hinge)", "fast"),
                  ("Reference (older networks, WGAN-GP, 2 critic updates)", "reference")]
TRAIN_FOR = [("2 minutes", 2), ("5 minutes", 5), ("10 minutes", 10), ("20 minutes", 20), ("30 minutes", 30),
             ("60 minutes", 60), ("the number of steps", 0)]
ADD_TIME = [("no time (use steps)", 0), ("5 minutes", 5), ("10 minutes", 10), ("20 minutes", 20),
            ("30 minutes", 30), ("60 minutes", 60)]
RESOLUTION_HINT = "128 px costs about 4x the time per image of 64 px: give it at least 4x the time."
CRITIC_WIDTH_HINT = (f"Channels. Conditional models: 0 = by the time budget ({SHORT_CRITIC} if this computer trains on "
                     f"at most {SHORT_KIMG:g} thousand images in it, else {CRITIC_WIDTH}).")
SAMPLE_LABELS = {"cgan": "Latest samples (one row per class)",
                 "sgan": "Latest samples (one 256 px texture per source image)"}


def variant_defaults(variant: str, recipe: str):
    """The fields that follow the variant: resolution (conditional only), the class-zip upload
    (conditional only), the sample label, batch, widths, intervals, augmentation, learning rate."""
    d = options.defaults(variant, recipe)
    return (gr.update(visible=variant == "cgan"), gr.update(visible=variant == "cgan"),
            gr.update(label=SAMPLE_LABELS[variant]), d["batch"], d["g_channels"], d["d_channels"],
            d["sample_every"], d["ckpt_every"], d["augment"], d["lr"])


def recipe_defaults(recipe: str, variant: str):
    d = options.defaults(variant, recipe)
    return d["lr"], d["augment"], d["d_channels"]


def check(ctx: Context, variant, data, batch, patch, progress=gr.Progress()):
    rep = ctx.ws.check_data(variant, data, batch=batch, patch=patch,
                            on_progress=lambda f: progress(f, desc="Reading images"))
    sheet = rep.thumbnails()
    return rep.markdown(), gr.update(value=sheet, visible=sheet is not None)


def start(ctx: Context, run_name, variant, data, recipe, resolution, steps, minutes, batch, augment, g_channels,
          d_channels, lr, seed, sample_every, ckpt_every, patch, depth, progress=gr.Progress()):
    run = ctx.ws.run(run_name)
    ctx.jobs.refuse_start(run)  # before the data is read: a busy studio or a taken name says so at once
    settings = dict(resolution=resolution, minutes=minutes, batch=batch, augment=augment, g_channels=g_channels,
                    d_channels=d_channels, lr=lr, seed=seed, sample_every=sample_every, ckpt_every=ckpt_every)
    settings.update({"patch": patch, "depth": depth} if variant == "sgan" else {})
    settings.update({} if minutes else {"steps": steps})  # a time budget has no step limit
    cfg = ctx.ws.run_config(variant, data, recipe, on_progress=lambda f: progress(f, desc="Reading images"),
                            form=True, **settings)
    ctx.jobs.train(cfg, run)
    names = ctx.ws.run_names()
    return f"Started '{run.name}'.", gr.update(choices=names + [run.name] * (run.name not in names), value=run.name)


def resume(ctx: Context, run_name, steps, minutes):
    total, more = options.resume_limits(steps, minutes)
    ctx.jobs.resume(ctx.ws.run(run_name), steps=total, minutes=more)
    return f"Resuming '{run_name}'" + (f" for {more:g} more minutes." if more else ".")


def stop(ctx: Context):
    if ctx.jobs.stop():
        return "Stopping: the run saves a checkpoint and ends after the current step."
    return "No training is running."


def run_list(ctx: Context, current=None):
    """Runs with a checkpoint; the chosen one stays chosen, else the most recently trained."""
    names = ctx.ws.run_names()
    return gr.update(choices=names, value=current if current in names else (names[-1] if names else None))


def monitor(ctx: Context, chosen, last_sig):
    """Timer tick: progress, samples, gauge and losses of the training run (or the chosen run),
    and which of Start / Resume / Stop can be pressed."""
    v = ctx.jobs.view(ctx.ws.find_run(chosen), since=last_sig)
    if v.signature == last_sig:
        return (gr.skip(),) * 8
    # the label says what the picture shows (the run's kind); with no run there is no picture, and
    # the label stays as the chosen mode set it
    sample = gr.update(value=v.sample, label=SAMPLE_LABELS.get(v.variant, SAMPLE_LABELS["cgan"])) \
        if v.sample is not None else gr.skip()  # no run, no picture yet, or it is being replaced
    return (loss_frame(v.stats), progress_html(v), sample, quality_figure(v.quality), v.signature,
            gr.update(interactive=not v.busy), gr.update(interactive=not v.busy), gr.update(interactive=v.busy))


def build(ctx: Context, refresh_seconds: float) -> dict:
    """The tab's layout and events; returns the components other parts of the page use."""
    E = errors_as_messages
    td, tex = options.defaults("cgan"), options.defaults("sgan")
    with gr.Tab("Train", id="train"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=380):
                variant = gr.Radio([("Conditional images (class folders)", "cgan"), ("Texture", "sgan")],
                                   value="cgan", label="What to train",
                                   info="Conditional: one subfolder of images per class. Texture: one or more "
                                        "texture images.")
                with gr.Row(equal_height=True):
                    data = gr.Textbox(label="Training data", placeholder="/path/to/my-pictures", scale=4,
                                      info="A folder on this computer (textures: image files or a folder; "
                                           "several paths separated by ;)")
                    check_btn = gr.Button("Check data", size="md", scale=1, min_width=110)
                with gr.Accordion("Or upload a zip of class folders", open=False) as zip_box:
                    zip_file = gr.File(label="Zip file", file_types=[".zip"], type="filepath", height=120)
                    gr.Markdown(f"<span class='hint'>At most {MAX_UPLOAD_MB} MB. It is unpacked into the "
                                "workspace and the path above is filled in.</span>")
                data_summary = gr.Markdown()
                data_sheet = gr.Image(label="Thumbnails", type="numpy", format="png", interactive=False,
                                      visible=False, show_label=False, buttons=["fullscreen"])
                with gr.Row():
                    run_name = gr.Textbox(label="Run name", placeholder="e.g. flowers-64", scale=2,
                                          info="Letters, digits, - and _")
                    minutes = gr.Dropdown(TRAIN_FOR, value=10, label="Train for", scale=1, min_width=150,
                                          info="Stops with a checkpoint")
                    steps = gr.Number(value=td["steps"], label="Steps", scale=1,
                                      min_width=100, info="When training for steps")
                    batch = gr.Number(value=td["batch"], label="Batch", scale=1,
                                      min_width=100, info="Images per step")
                with gr.Row():
                    resolution = gr.Radio([str(r) for r in RESOLUTIONS], value=str(td["resolution"]),
                                          label="Resolution (px)", info=f"{speed_note()} {RESOLUTION_HINT}")
                    recipe = gr.Radio(RECIPE_CHOICES, value=DEFAULT_RECIPE, label="Recipe",
                                      info="How the two networks are optimised")
                augment = gr.CheckboxGroup(list(AUGMENTS), value=td["augment"], label="Augmentation",
                                           info="Helps small datasets (under ~1000 images)")
                with gr.Accordion("More settings", open=False):
                    with gr.Row():
                        g_channels = gr.Number(value=td["g_channels"], label="Generator width", info="Channels; bigger = more capacity, slower.")
                        d_channels = gr.Number(value=td["d_channels"], label="Critic width",
                                               info=CRITIC_WIDTH_HINT)
                    with gr.Row():
                        lr = gr.Number(value=td["lr"], label="Learning rate", info="Adam, both networks.")
                        seed = gr.Number(value=td["seed"], label="Seed")
                    with gr.Row():
                        sample_every = gr.Number(value=td["sample_every"], label="Samples every (steps)")
                        ckpt_every = gr.Number(value=td["ckpt_every"], label="Checkpoint every (steps)")
                    with gr.Row():
                        patch = gr.Number(value=tex["patch"], label="Patch (textures)",
                                          info="Training crop size in px; a multiple of 2^depth.")
                        depth = gr.Number(value=tex["depth"], label="Depth (textures)", info="Stride-2 layers of the generator.")
                with gr.Row():
                    start_btn = gr.Button("Start training", variant="primary")
                    stop_btn = gr.Button("Stop", variant="stop", interactive=False)
                with gr.Accordion("Resume a stopped run", open=False):
                    with gr.Row():
                        resume_run = gr.Dropdown([], label="Run", allow_custom_value=True, scale=3)
                        resume_minutes = gr.Dropdown(ADD_TIME, value=10, label="Add time", scale=2)
                        resume_steps = gr.Number(value=0, label="New total steps",
                                                 info="0 keeps the run's own total.", scale=2)
                    with gr.Row():
                        resume_btn = gr.Button("Resume")
                        runs_refresh = gr.Button("Refresh list")
                train_msg = gr.Markdown()
            with gr.Column(scale=6, min_width=420):
                progress_box = gr.HTML(progress_html(ctx.jobs.view()))
                sample_img = gr.Image(label=SAMPLE_LABELS["cgan"], type="numpy", format="png", interactive=False,
                                      height=300, elem_classes="pixelated", buttons=["download", "fullscreen"])
                quality_plot = gr.Plot(None, label="Quality: how close the samples come to your images", format="png")
                loss_plot = gr.LinePlot(None, x="step", y="loss", color="curve", color_map=LOSS_COLORS,
                                        label="Losses: critic (blue), generator (orange)", x_title="step",
                                        y_title="loss", height=240)
        monitor_sig = gr.State(None)
        timer = gr.Timer(refresh_seconds)

    settings = [resolution, steps, minutes, batch, augment, g_channels, d_channels, lr, seed, sample_every,
                ckpt_every, patch, depth]
    checked = dict(fn=E(partial(check, ctx)), inputs=[variant, data, batch, patch], outputs=[data_summary, data_sheet])
    check_btn.click(**checked, api_name="check_data")
    zip_file.upload(E(partial(ctx.ws.import_zip, remove_upload=True)), zip_file, data, api_name="upload_zip").success(
        **checked, api_visibility="private")
    variant.change(variant_defaults, [variant, recipe], [resolution, zip_box, sample_img, batch, g_channels,
                                                          d_channels, sample_every, ckpt_every, augment, lr],
                   api_visibility="private")
    recipe.change(recipe_defaults, [recipe, variant], [lr, augment, d_channels], api_visibility="private")
    start_btn.click(E(partial(start, ctx)), [run_name, variant, data, recipe] + settings, [train_msg, resume_run],
                    api_name="start", concurrency_id="train_control")
    stop_btn.click(partial(stop, ctx), None, train_msg, api_name="stop", queue=False)  # never behind a queue
    resume_btn.click(E(partial(resume, ctx)), [resume_run, resume_steps, resume_minutes], train_msg,
                     api_name="resume", concurrency_id="train_control")
    runs_refresh.click(partial(run_list, ctx), resume_run, resume_run, api_name="list_runs")
    timer.tick(partial(monitor, ctx), [resume_run, monitor_sig],
               [loss_plot, progress_box, sample_img, quality_plot, monitor_sig, start_btn, resume_btn, stop_btn],
               api_name="monitor", show_progress="hidden", concurrency_id="monitor", concurrency_limit=4)
    return {"resume_run": resume_run}
