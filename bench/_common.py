"""Helpers shared by the benchmark scripts: repo import path, machine description, statistics."""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python bench/x.py` from the repo root imports gan_core
    sys.path.insert(0, str(REPO))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine() -> str:
    """One line: CPU, cores, relevant vector extensions, torch version and threads, and the
    kernels torch uses when they are held below what the CPU has (ATEN_CPU_CAPABILITY,
    ONEDNN_MAX_CPU_ISA: how a CPU with AVX512 stands in for one with AVX2 only)."""
    import torch

    flags = cpu_flags()
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    lack = [f for f in ("avx512_bf16", "amx_tile") if f not in flags]
    ext = ", ".join(have) + (f"; no {'/'.join(lack)}" if lack else "")
    capped = [f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if os.environ.get(k)]
    kernels = f"; kernels held at {', '.join(capped)} (torch uses {torch.backends.cpu.get_cpu_capability()})" if capped else ""
    return (f"{cpu_name()}, {os.cpu_count()} cores ({ext}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads{kernels}")


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def median(xs) -> float:
    return statistics.median(xs)


def percentile(xs, q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0


def md_table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def count_flops(fn) -> tuple[float, object]:
    """Floating-point operations (2 per multiply-add) of the matrix multiplications and
    convolutions, forward and backward, that `fn()` runs; returns (flops, fn's result).

    A plain dispatch mode over torch's own per-operator formulas (torch.utils.flop_counter);
    unlike FlopCounterMode it keeps no module hooks, so double backward (the gradient penalty)
    can be counted too.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class _Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    with _Count() as c:
        res = fn()
    return float(c.total), res


def _busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (from /proc/stat)."""
    try:
        f = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return float("nan")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class OtherLoad:
    """How busy other processes kept the machine during a block: their CPU seconds divided by
    (wall seconds x cores); 0 = the benchmark had the machine to itself, 1 = others used all of it."""

    share = float("nan")

    def start(self) -> "OtherLoad":
        self.t0, self.b0, self.s0 = time.perf_counter(), _busy_seconds(), _own_seconds()
        return self

    def stop(self) -> float:
        wall = time.perf_counter() - self.t0
        others = (_busy_seconds() - self.b0) - (_own_seconds() - self.s0)
        self.share = max(0.0, others) / max(wall * (os.cpu_count() or 1), 1e-9)
        return self.share

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run_in_temp_dir(a, prefix: str, run) -> int:
    """Apply --threads, then call run(a, tmp) with a fresh temporary folder that is removed after;
    other temporary files made meanwhile (gradio's client leaves a folder per download) go there too."""
    import os
    import shutil
    import tempfile

    import torch
    if getattr(a, "threads", None):
        torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    (tmp / "other").mkdir()
    before = tempfile.tempdir, os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = tempfile.tempdir = str(tmp / "other")
    try:
        return run(a, tmp)
    finally:
        tempfile.tempdir = before[0]
        if before[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before[1]
        shutil.rmtree(tmp, ignore_errors=True)
