"""The studio inside a Jupyter cell (`from studio import launch; launch()`): served on 127.0.0.1
only, over the workspace and the training job of `gan_core.notebook`."""
from __future__ import annotations

import os
from pathlib import Path


class InlineStudio:
    """The notebook's studio: its address, the page (`demo`), `show()` and `close()`."""

    def __init__(self, demo, height: int):
        self.demo, self.height = demo, height
        self.url = f"http://127.0.0.1:{demo.server_port}/"

    @property
    def workspace(self) -> Path:
        return self.demo.ctx.ws.root

    def __repr__(self) -> str:
        state = "running" if self.demo.is_running else "closed"
        return f"<GAN Studio {state} at {self.url}; workspace {self.workspace}>"

    def show(self, height: int | None = None) -> None:
        """Show the studio in the notebook (in a terminal: print its address)."""
        from gan_core.live import in_notebook

        if not in_notebook():
            print(f"GAN Studio is running at {self.url}  (workspace {self.workspace})")
            return
        from IPython.display import HTML, display

        display(HTML(f'<div><iframe src="{self.url}" width="100%" height="{height or self.height}" frameborder="0" '
                     f'allow="clipboard-read; clipboard-write" title="GAN Studio"></iframe>'
                     f'<div style="font-size:small">GAN Studio at <a href="{self.url}" target="_blank">{self.url}'
                     '</a> (opens in a browser tab)</div></div>'))

    def close(self) -> None:
        """Stop serving the page (a run that trains goes on: it belongs to the notebook's job)."""
        global _inline
        self.demo.close()
        if _inline is self:
            _inline = None


_inline: InlineStudio | None = None


def launch(workspace: str | os.PathLike | None = None, models: str | os.PathLike | None = None,
           port: int | None = None, height: int = 900) -> InlineStudio:
    """Show the studio inside a Jupyter cell, served on 127.0.0.1 only, over the workspace and the
    training job of `gan_core.notebook` (a run trained with gs.train shows in its Train tab, and
    one job trains at a time for both). A second call shows the same studio again."""
    global _inline
    from gan_core import notebook as gs
    from gan_core.errors import StudioError
    from studio import free_port

    if _inline is not None and _inline.demo.is_running:
        if workspace is not None and Path(workspace).expanduser().resolve() != _inline.workspace:
            raise StudioError(f"The notebook's studio runs on {_inline.workspace}; close it (.close()) before "
                              "launching it on another workspace.")
        _inline.show(height)
        return _inline
    ws = gs.use(workspace, models) if workspace is not None or models is not None else gs.workspace()
    os.environ["GRADIO_TEMP_DIR"] = str(ws.fresh_web_temp())
    from .app import build_app, launch_app  # after the line above: gradio reads it when imported

    demo = build_app(ws.root, models_dir=ws.models_dir, jobs=gs.session().jobs)
    launch_app(demo, port=port or free_port(), prevent_thread_lock=True, quiet=True)
    _inline = InlineStudio(demo, height)
    _inline.show()
    return _inline
