"""Checkpoints: safetensors weights + config.json + training state, written atomically.

A run folder keeps its checkpoints in `checkpoints/step_NNNNNNNN/`, each holding
`config.json`, `G.safetensors`, `G_ema.safetensors`, `D.safetensors` and `train_state.pt`
(optimizers, step, RNG states, loss history; read with `weights_only=True`). A checkpoint is built
in a hidden temporary folder and renamed into place, so a crash leaves either the previous
checkpoint or the complete new one, never a partial one. A model folder (such as a shipped demo)
needs only `config.json` and `G_ema.safetensors` (or `G.safetensors`). `RUN/best/` is one: the
averaged generator at the quality gauge's closest reading so far, with that reading in `best.json`.

Model files are judged by their bytes: a file that is not a well-formed safetensors file (for
example a pickle renamed to .safetensors) is refused without being unpickled.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import torch
from torch import nn

from .config import RunConfig
from .errors import CheckpointError, ConfigError
from .io import atomic_write, fsync_dir, plain_mode
from .nets import build_generator
from . import spectrum
from .spectrum import SPECTRUM_FILE

CKPT_SUBDIR = "checkpoints"
BEST_SUBDIR = "best"  # RUN/best: a model folder of the weights closest to the held-back images so far
BEST_INFO = "best.json"
WEIGHT_FILES = ("G.safetensors", "G_ema.safetensors", "D.safetensors")
STATE_FILE = "train_state.pt"
MAX_HEADER = 100_000_000
MAX_WEIGHT = 1e8  # trained weights and BatchNorm statistics stay many orders of magnitude below this


def checkpoint_dirs(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders of a run, newest first."""
    d = Path(run_dir) / CKPT_SUBDIR
    if not d.is_dir():
        return []
    out = [p for p in d.iterdir() if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit()]
    return sorted(out, key=lambda p: int(p.name[5:]), reverse=True)


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint of `step` lives in a run folder."""
    return Path(run_dir) / CKPT_SUBDIR / f"step_{int(step):08d}"


def _finish_file(path: Path) -> None:
    """A file of a checkpoint folder before it is renamed into place: the permissions open() gives
    (safetensors writes owner-only files), then flushed to disk."""
    plain_mode(path)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save_checkpoint(run_dir: str | os.PathLike, cfg: RunConfig, G: nn.Module, G_ema: nn.Module,
                    D: nn.Module, state: dict, keep: int = 2, spectral_gain: torch.Tensor | None = None) -> Path:
    """Write a complete checkpoint for `state['step']` and prune all but the newest `keep`;
    `spectral_gain`: the averaged generator's equaliser gains (gan_core.spectrum), written beside it.

    A failed write (disk full, read-only folder) raises CheckpointError and leaves the earlier
    checkpoints as they were.
    """
    from safetensors.torch import save_file

    final = checkpoint_path(run_dir, state["step"])
    root = final.parent
    tmp = root / f".tmp_{final.name}_{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        (tmp / "config.json").write_text(cfg.to_json())
        for name, m in zip(WEIGHT_FILES, (G, G_ema, D)):
            save_file(_plain_state(m), str(tmp / name))
        if spectral_gain is not None:
            spectrum.write(tmp / SPECTRUM_FILE, spectral_gain)
        torch.save(state, tmp / STATE_FILE)
        for f in tmp.iterdir():
            _finish_file(f)
        fsync_dir(tmp)
        _swap_in(tmp, final)  # re-saving the same step replaces the old one
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(e, Exception):  # Ctrl-C, exit: nothing to explain
            raise
        # A full or read-only disk surfaces as OSError from Python, but as the library's own error
        # from safetensors ("SafetensorError: ... No space left") or torch ("unexpected pos").
        prev = [p.name for p in checkpoint_dirs(run_dir)]
        kept = f"The previous checkpoint ({prev[0]}) is intact. " if prev else ""
        raise CheckpointError(
            f"Could not write the checkpoint for step {int(state['step'])} in {root}: {_reason(e)}. "
            f"{kept}Free some disk space or make the folder writable, then resume the run.") from None
    for stale in checkpoint_dirs(run_dir)[keep:]:  # renamed first, so no half-deleted step_* is left
        gone = root / f".old_{stale.name}_{os.getpid()}"
        try:
            os.replace(stale, gone)
        except OSError:
            continue
        shutil.rmtree(gone, ignore_errors=True)
    for leftover in list(root.glob(".tmp_*")) + list(root.glob(".old_*")):  # from a crash during an earlier save
        if leftover != tmp:
            shutil.rmtree(leftover, ignore_errors=True)
    return final


def write_spectrum(folder: str | os.PathLike, gains: torch.Tensor, dtype: torch.dtype = torch.float32) -> None:
    """Write (or replace) the equaliser gains beside a checkpoint's or model's weights, atomically: a
    crash leaves the old file or the new one whole."""
    try:
        atomic_write(Path(folder) / SPECTRUM_FILE, lambda tmp: spectrum.write(tmp, gains, dtype))
    except OSError as e:
        raise CheckpointError(f"Could not write the equaliser of {folder}: {_reason(e)}. Free some disk "
                              "space or make the folder writable; the checkpoint's weights are intact.") from None


def _plain_state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in m.state_dict().items()}


def read_config(folder: str | os.PathLike) -> RunConfig:
    p = Path(folder) / "config.json"
    if not p.is_file():
        raise CheckpointError(f"{folder} has no config.json: it is not a model or checkpoint folder.")
    try:
        return RunConfig.from_json(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{p} is not a text file.") from None
    except ConfigError as e:
        raise CheckpointError(f"{p}: {e}") from None


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file after checking its bytes really are safetensors."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.name} is missing in {path.parent}.")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        raise CheckpointError(f"{path.name} is truncated (only {size} bytes).")
    (n,) = struct.unpack("<Q", head[:8])
    if n > min(size - 8, MAX_HEADER) or head[8:9] != b"{":
        # Not safetensors. (A safetensors header may itself start with 0x80, so the pickle
        # signature is only used to word the message, never to decide.)
        if head[:2] == b"PK" or (head[:1] == b"\x80" and 2 <= head[1] <= 5):
            raise CheckpointError(f"{path.name} is a pickle/zip file, not safetensors; it was not opened. "
                                  "Only safetensors model files are accepted.")
        raise CheckpointError(f"{path.name} is not a valid safetensors file (its header length says "
                              f"{n} bytes in a file of {size}); it was not opened.")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path.name} is damaged or truncated: {e}") from None


def load_weights(model: nn.Module, tensors: dict[str, torch.Tensor], name: str) -> None:
    """Copy tensors into model after checking keys, shapes and finiteness."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        what = (f"missing {missing[:3]}" if missing else "") + (" and " if missing and extra else "") + \
               (f"unexpected {extra[:3]}" if extra else "")
        raise CheckpointError(f"{name} does not match config.json: {what}.")
    cast = {}
    for k, v in tensors.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(f"{name}: {k} has shape {tuple(v.shape)}, config.json needs "
                                  f"{tuple(expected[k].shape)}.")
        c = v.to(expected[k].dtype)  # checked as it will be used: 1e300 in float64 is inf in float32
        if c.is_floating_point():
            if not torch.isfinite(c).all():
                raise CheckpointError(f"{name}: {k} holds NaN or infinite values (in {c.dtype}).")
            if k.endswith("running_var") and (c < 0).any():
                raise CheckpointError(f"{name}: {k} holds negative variances.")
            if c.abs().max() > MAX_WEIGHT:
                raise CheckpointError(f"{name}: {k} holds values of {float(c.abs().max()):.3g}, far beyond "
                                      "what training makes; the file is damaged.")
        cast[k] = c
    model.load_state_dict(cast)


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """A run folder resolves to its newest complete checkpoint; a model folder to itself."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"{p} does not exist.")
    if not p.is_dir():
        raise CheckpointError(f"{p} is a file; give the model or run folder that holds config.json.")
    ckpts = checkpoint_dirs(p)
    if ckpts:
        return ckpts[0]
    if (p / "config.json").is_file():
        return p
    raise CheckpointError(f"{p} holds no checkpoint yet (no checkpoints/step_* folder or config.json).")


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu",
                   ema: bool = True, equalise: bool = True) -> tuple[nn.Module, RunConfig]:
    """Rebuild the generator (EMA weights by default) from a model, checkpoint or run folder.
    With `equalise` (and the EMA weights) a conditional generator gets the folder's spectral
    equaliser gains as `G.spectral_gain`, which sampling.generate applies (gan_core.spectrum)."""
    d = resolve_model_dir(path)
    cfg = read_config(d)
    G = build_generator(cfg)
    name = "G_ema.safetensors" if ema and (d / "G_ema.safetensors").is_file() else "G.safetensors"
    load_weights(G, read_safetensors(d / name), name)
    if equalise and name == "G_ema.safetensors" and cfg.variant == "cgan":
        G.spectral_gain = read_spectrum(d, cfg)
    G = G.to(device).eval()
    if next(G.parameters()).device.type == "cpu":
        # oneDNN's CPU convolutions are faster on channels-last weights (as training uses): 16 demo
        # pictures in 21 ms instead of 42 with AMX, 30 instead of 38 with AVX2 alone; textures 1.2x
        G = G.to(memory_format=torch.channels_last)
    return G, cfg


def read_spectrum(folder: Path, cfg: RunConfig) -> torch.Tensor | None:
    """The equaliser gains (classes, 3, R, R) of a model or checkpoint folder, float32; None if it
    has none (folders written before the equaliser existed draw unfiltered)."""
    path = folder / SPECTRUM_FILE
    if not path.is_file():
        return None
    gains = read_safetensors(path).get("gain")
    why = "it holds no \"gain\" tensor" if gains is None else spectrum.check(gains, cfg.model.n_classes, cfg.model.resolution)
    if why:
        raise CheckpointError(f"{SPECTRUM_FILE} in {folder} does not fit the model: {why}. Delete that file "
                              "to use the model without its equaliser, or resume the run to fit a new one.")
    return gains.float()


def export_model(src: str | os.PathLike, out: str | os.PathLike, half: bool = True) -> Path:
    """Write a model folder for sharing or shipping: config.json + G_ema.safetensors, nothing else.

    `src` is a run, checkpoint or model folder; the generator's EMA weights are stored as float16
    when `half` (they load back as float32). Training data paths in the config are made relative
    to the working directory where possible, and reduced to their file names otherwise, so the
    folder carries no absolute paths of the machine it was trained on. Written to a temporary
    folder and renamed into place; an existing `out` is refused rather than overwritten.
    """
    G, cfg = load_generator(src)
    out = Path(out).expanduser()
    if out.exists():
        raise CheckpointError(f"{out} already exists; remove it or choose another folder.")
    cwd = Path.cwd().resolve()
    rel = []
    for d in cfg.data:
        p = Path(d)
        try:
            rel.append(str(p.resolve().relative_to(cwd)))
        except ValueError:
            rel.append(p.name)
    cfg.data = rel
    weights = {k: (v.half() if half and v.is_floating_point() else v) for k, v in _plain_state(G).items()}
    _write_model_folder(out, cfg, weights, "float16" if half else "float32",
                        spectral_gain=getattr(G, "spectral_gain", None), gain_dtype=torch.float16 if half else torch.float32)
    return out


def save_best(run_dir: str | os.PathLike, cfg: RunConfig, G_ema: nn.Module, reading: dict,
              spectral_gain: torch.Tensor | None = None) -> Path:
    """Write RUN/best: the averaged generator as a model folder (float32; with its equaliser gains
    `spectral_gain`), with the gauge `reading` it scored in best.json, in place of the earlier best. Built
    in a temporary folder and swapped in, so a crash leaves the earlier best or the new one whole."""
    out = Path(run_dir) / BEST_SUBDIR
    try:
        _write_model_folder(out, cfg, _plain_state(G_ema), "float32", {BEST_INFO: reading},
                            spectral_gain=spectral_gain)
    except Exception as e:
        raise CheckpointError(f"Could not write the closest model so far to {out}: {_reason(e)}. Free some "
                              "disk space or make the folder writable, then resume the run.") from None
    for leftover in list(out.parent.glob(f".tmp_{BEST_SUBDIR}_*")) + list(out.parent.glob(f".old_{BEST_SUBDIR}_*")):
        shutil.rmtree(leftover, ignore_errors=True)  # from a process killed during an earlier write
    return out


def read_best(run_dir: str | os.PathLike) -> dict | None:
    """The gauge reading of RUN/best ({"step", "swd", ...}), or None without a readable one."""
    d = Path(run_dir) / BEST_SUBDIR
    try:
        info = json.loads((d / BEST_INFO).read_text(encoding="utf-8"))
        ok = (d / "G_ema.safetensors").is_file() and float(info["swd"]) >= 0 and int(info["step"]) >= 0
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if ok else None


def _write_model_folder(out: Path, cfg: RunConfig, weights: dict[str, torch.Tensor], dtype: str,
                        extra: dict[str, dict] | None = None, spectral_gain: torch.Tensor | None = None,
                        gain_dtype: torch.dtype = torch.float32) -> None:
    """config.json + G_ema.safetensors (+ the equaliser's gains, + `extra` JSON files) written to a
    temporary folder, synced and renamed to `out`; an existing `out` is moved aside first and removed
    once the new one is in."""
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp_{out.name}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "config.json").write_text(cfg.to_json() + "\n")
        save_file(weights, str(tmp / "G_ema.safetensors"), metadata={"dtype": dtype})
        if spectral_gain is not None:
            spectrum.write(tmp / SPECTRUM_FILE, spectral_gain, gain_dtype)
        for name, obj in (extra or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        for f in tmp.iterdir():
            _finish_file(f)
        fsync_dir(tmp)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, final: Path) -> None:
    """Rename the finished folder `tmp` to `final`. An existing `final` is moved aside first (put
    back if the rename fails) and removed once the new one is in, so `final` is never half old, half
    new."""
    old = final.parent / f".old_{final.name}_{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old.exists() and not final.exists():
            os.replace(old, final)
        raise
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _reason(e: Exception) -> str:
    """One line saying why a write failed, whichever library raised."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


STATE_KEYS = {"step": int, "opt_g": dict, "opt_d": dict, "rng": torch.Tensor, "torch_rng": torch.Tensor,
              "elapsed": (int, float), "history": list}


def load_training_state(ckpt: Path, G: nn.Module, G_ema: nn.Module, D: nn.Module) -> dict:
    for name, m in zip(WEIGHT_FILES, (G, G_ema, D)):
        load_weights(m, read_safetensors(ckpt / name), name)
    try:
        st = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{ckpt / STATE_FILE} cannot be read safely: {e}") from None
    bad = [k for k, t in STATE_KEYS.items() if not isinstance(st, dict) or not isinstance(st.get(k), t)]
    if bad:
        raise CheckpointError(f"{ckpt / STATE_FILE} lacks or mangles {', '.join(bad)}; it is not a "
                              "training state this program wrote.")
    return st


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
