"""The whole page: a header and the three tabs over one workspace and one training job."""
from __future__ import annotations

import os

import gradio as gr

from gan_core.jobs import Jobs
from gan_core.workspace import Workspace

from . import explore_tab, server, texture_tab, train_tab
from .common import CSS, MAX_QUEUE, MAX_UPLOAD_MB, Context, model_list


def build_app(workspace: str | os.PathLike = "workspace", models_dir: str | os.PathLike | None = None,
              data_root: str | os.PathLike | None = None, jobs: Jobs | None = None,
              refresh_seconds: float = 1.5) -> gr.Blocks:
    """The page. Launch it with `launch_app` (queue limits, allowed paths, upload limit)."""
    ctx = Context(Workspace(workspace, models_dir, data_root), jobs or Jobs())
    with gr.Blocks(title="GAN Studio", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        demo.ctx = ctx
        gr.Markdown("## GAN Studio\nTrain a GAN on your own pictures, then explore it and paint textures with it.")
        with gr.Tabs():
            train = train_tab.build(ctx, refresh_seconds)
            explore = explore_tab.build(ctx)
            tex = texture_tab.build(ctx)

        def on_load(run, cgan, sgan):
            return train_tab.run_list(ctx, run), model_list(ctx, "cgan", cgan), model_list(ctx, "sgan", sgan)

        pickers = [train["resume_run"], explore["model"], tex["model"]]
        demo.load(on_load, pickers, pickers, api_visibility="private")
    return demo


def launch_app(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, auth=None,
               prevent_thread_lock: bool = False, quiet: bool = False, max_queue: int = MAX_QUEUE,
               max_upload_mb: int = MAX_UPLOAD_MB):
    """Queue with concurrency limits, serve only the exports folder, cap uploads, no share link;
    on this machine answer only requests addressed to it; in workshop mode limit login attempts."""
    demo.queue(default_concurrency_limit=1, max_size=max_queue)
    guards = server.middleware(local_only=host in server.LOCAL_NAMES, login_limit=auth is not None,
                               max_upload_bytes=max_upload_mb * 1_000_000 + 100_000)  # + the form's own bytes
    return demo.launch(server_name=host, server_port=port, share=False, auth=auth, app_kwargs={"middleware": guards},
                       auth_message="GAN Studio workshop: ask the host for the password." if auth else None,
                       allowed_paths=[str(demo.ctx.ws.exports), str(demo.ctx.ws.favourites)], max_file_size=f"{max_upload_mb}mb",
                       prevent_thread_lock=prevent_thread_lock, quiet=quiet, show_error=True,
                       footer_links=["api", "settings"], theme=gr.themes.Soft(), css=CSS, inbrowser=False,
                       inline=False, ssr_mode=False)  # a notebook shows it through studio.launch
