"""The Texture tab's pictures: the real-scale viewer (3 x 3 copies at 1:1, zoom, pan, half-offset),
the style map drawn over the texture, and the brush labels."""
from __future__ import annotations

import html

import gradio as gr
import numpy as np
from PIL import Image

from gan_core.texture import shrink

from .common import data_uri

VIEWER_MAX = 4096  # the viewer gets a copy at most this size (larger textures: a note says so)
CANVAS_SIDE = 512  # the style map's longer side on screen
PAINT_OPACITY = 0.55

VIEWER_TEMPLATE = """
<div class="rs-bar">
  <button class="rs-out" title="Zoom out">&minus;</button><span class="rs-zoom">100%</span>
  <button class="rs-in" title="Zoom in">+</button><button class="rs-one" title="Actual pixels">1:1</button>
  <label class="rs-halfl"><input type="checkbox" class="rs-half"> half-offset (seams in the middle)</label>
  <span class="rs-note">${note}</span>
</div>
<div class="rs-view"><div class="rs-tiles" data-src="${value}"></div></div>
"""

VIEWER_CSS = """
.rs-bar { display: flex; gap: 6px; align-items: center; margin-bottom: 6px; font-size: 0.9rem; flex-wrap: wrap; }
.rs-bar button { min-width: 34px; padding: 2px 8px; border: 1px solid var(--border-color-primary);
                 border-radius: 6px; background: var(--button-secondary-background-fill); cursor: pointer; }
.rs-zoom { min-width: 48px; text-align: center; font-variant-numeric: tabular-nums; }
.rs-note { color: var(--body-text-color-subdued); }
.rs-view { height: 470px; overflow: auto; border: 1px solid var(--border-color-primary); border-radius: 6px;
           background: #222; cursor: grab; }
.rs-tiles { background-repeat: repeat; }
"""

# Zoom steps double and halve; the picture is W x H px at 100 %. Dragging pans, the wheel zooms.
VIEWER_JS = """
const view = element.querySelector('.rs-view');
let zoom = 1, drag = null;
function apply(keepCentre) {
  const t = element.querySelector('.rs-tiles');
  const src = t.dataset.src; const w = +props.tex_w || 0, h = +props.tex_h || 0;
  if (!src || !w) { t.style.width = '0px'; t.style.height = '0px'; return; }
  const cx = view.scrollLeft + view.clientWidth / 2, cy = view.scrollTop + view.clientHeight / 2;
  const old = parseFloat(t.style.width) || 3 * w * zoom;
  t.style.backgroundImage = `url(${src})`;
  t.style.width = `${3 * w * zoom}px`; t.style.height = `${3 * h * zoom}px`;
  t.style.backgroundSize = `${w * zoom}px ${h * zoom}px`;
  const half = element.querySelector('.rs-half').checked;
  t.style.backgroundPosition = half ? `${w * zoom / 2}px ${h * zoom / 2}px` : '0px 0px';
  t.style.imageRendering = zoom > 1 ? 'pixelated' : 'auto';
  element.querySelector('.rs-zoom').textContent = `${Math.round(zoom * 100)}%`;
  const f = 3 * w * zoom / old;
  if (keepCentre) { view.scrollLeft = cx * f - view.clientWidth / 2; view.scrollTop = cy * f - view.clientHeight / 2; }
  else { view.scrollLeft = (3 * w * zoom - view.clientWidth) / 2; view.scrollTop = (3 * h * zoom - view.clientHeight) / 2; }
}
function setZoom(z) { zoom = Math.min(8, Math.max(1 / 16, z)); apply(true); }
element.querySelector('.rs-in').onclick = () => setZoom(zoom * 2);
element.querySelector('.rs-out').onclick = () => setZoom(zoom / 2);
element.querySelector('.rs-one').onclick = () => setZoom(1);
element.querySelector('.rs-half').onchange = () => apply(true);
view.addEventListener('wheel', (e) => { if (e.ctrlKey || e.altKey) { e.preventDefault(); setZoom(zoom * (e.deltaY < 0 ? 1.25 : 0.8)); } },
                      { passive: false });
view.addEventListener('mousedown', (e) => { drag = [e.clientX, e.clientY, view.scrollLeft, view.scrollTop]; view.style.cursor = 'grabbing'; });
window.addEventListener('mouseup', () => { drag = null; view.style.cursor = 'grab'; });
view.addEventListener('mousemove', (e) => { if (drag) { view.scrollLeft = drag[2] - (e.clientX - drag[0]); view.scrollTop = drag[3] - (e.clientY - drag[1]); } });
watch(['value', 'tex_w', 'tex_h'], () => apply(false));
apply(false);
"""


def viewer() -> gr.HTML:
    return gr.HTML(None, html_template=VIEWER_TEMPLATE, css_template=VIEWER_CSS, js_on_load=VIEWER_JS,
                   tex_w=0, tex_h=0, note="Generate a texture to see it here at real scale.",
                   elem_classes="real-scale", label="Real scale 3 x 3")


def viewer_update(img: np.ndarray):
    """The viewer showing a texture: 3 x 3 copies at 1:1 (from a copy of at most VIEWER_MAX px)."""
    h, w = img.shape[:2]
    copy = shrink(img, VIEWER_MAX)
    note = f"{w} x {h} px" + ("" if copy.shape[:2] == (h, w) else
                              f"; shown from a {copy.shape[1]} x {copy.shape[0]} px copy (the 1:1 crop has every pixel)")
    note += ". Drag to pan, Ctrl + wheel to zoom."
    return gr.update(value=data_uri(copy), tex_w=w, tex_h=h, note=html.escape(note))


def canvas_value(img: np.ndarray, canvas, layer_rgba: np.ndarray | None = None) -> dict:
    """The style map's editor value: the texture (faded) underneath, at the texture's aspect
    ratio, and the painted layer kept (resized to the new size) or replaced by `layer_rgba`."""
    bg = shrink(img, CANVAS_SIDE) if max(img.shape[:2]) > CANVAS_SIDE else img
    if max(bg.shape[:2]) < CANVAS_SIDE:  # small textures are drawn larger, so brushes fit
        s = CANVAS_SIDE / max(bg.shape[:2])
        bg = np.asarray(Image.fromarray(bg).resize((round(bg.shape[1] * s), round(bg.shape[0] * s)),
                                                   Image.Resampling.NEAREST))
    faded = (0.55 * bg.astype(np.float32) + 0.45 * 255).astype(np.uint8)
    h, w = faded.shape[:2]
    layer = layer_rgba
    if layer is None and isinstance(canvas, dict) and canvas.get("layers"):
        layer = canvas["layers"][0]
    if layer is None:
        layer = np.zeros((h, w, 4), np.uint8)
    elif layer.shape[:2] != (h, w):
        layer = np.asarray(Image.fromarray(np.asarray(layer, np.uint8)).resize((w, h), Image.Resampling.NEAREST))
    return {"background": np.dstack([faded, np.full((h, w), 255, np.uint8)]), "layers": [layer], "composite": None}


def mask_layer(labels: np.ndarray, colours: list[str], size: tuple[int, int]) -> np.ndarray:
    """A painted layer (h, w, 4) from brush numbers: each brush's colour, half transparent."""
    h, w = size
    lab = np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((w, h), Image.Resampling.NEAREST))
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours], np.uint8)
    out = np.zeros((h, w, 4), np.uint8)
    out[..., :3] = rgb[lab]
    out[..., 3] = round(PAINT_OPACITY * 255)
    return out


def painted(canvas) -> np.ndarray | None:
    """What was painted: the editor's first layer (the texture underneath is not paint), or the
    composite of a value without layers (a picture sent through the API)."""
    if isinstance(canvas, dict):
        layers = [layer for layer in (canvas.get("layers") or []) if layer is not None]
        return layers[0] if layers else canvas.get("composite")
    return canvas


def brush_label(i: int, colour: str, cname: str, choice_label: str | None) -> str:
    """A brush's swatch, number and the style it paints ("0: gravel" is shown as "gravel")."""
    what = choice_label.split(": ", 1)[-1] if choice_label else "choose a style"
    what = "random style" if what.startswith("random") else what
    return (f"<span class='brush-swatch' style='background:{colour}' title='{cname}'></span>"
            f"<b>{i + 1}</b> {html.escape(what)}")
