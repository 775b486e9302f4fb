"""Material maps at 8192 px: seconds and memory for height, normal, roughness and AO (and writing
the set), in a fresh process.

The colour texture is a 1024 px demo texture repeated to the size (the maps' work and memory do
not depend on what the pixels show). The child reports its resident memory with the texture in
memory, then its peak (VmHWM from /proc/self/status) after gan_core.maps.make_maps(all) and after
gan_core.texture_files.save_set (PNG encoding included). The maps themselves take 2 bytes (height)
+ 3 (normal) + 1 + 1 per pixel = 448 MiB at 8192 px; the strips add tens of MB.

    python bench/texture_maps.py                 # 8192
    python bench/texture_maps.py --size 4096
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, OtherLoad, command_line, machine, md_table


def vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def child(size: int, out: str) -> None:
    import numpy as np

    from gan_core import maps, texture_files
    from gan_core.checkpoint import load_generator
    from gan_core.texture import generate_texture

    G, _ = load_generator(REPO / "checkpoints" / "demo-textures")
    tile = generate_texture(G, 1024, 1024, seed=1, tileable=True, source=0)
    del G
    img = np.tile(tile, (size // 1024, size // 1024, 1))
    base = vm_kib("VmRSS")
    t0 = time.perf_counter()
    made = maps.make_maps(img, "all", maps.MapSettings())
    t_maps = time.perf_counter() - t0
    peak_maps = vm_kib("VmHWM")
    del made
    t0 = time.perf_counter()
    texture_files.save_set(out, "bench", img, {"software": "bench"}, list(maps.MAP_NAMES), maps.MapSettings())
    t_save = time.perf_counter() - t0
    print(json.dumps({"size": size, "base_mib": base / 1024, "peak_maps_mib": peak_maps / 1024,
                      "peak_save_mib": vm_kib("VmHWM") / 1024, "maps_s": t_maps, "save_s": t_save}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=8192, help="square size, a multiple of 1024 (default %(default)s)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(a.size, a.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp, OtherLoad() as load:
        r = subprocess.run([sys.executable, __file__, "--child", "--size", str(a.size), "--out", tmp],
                           capture_output=True, text=True, check=True)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"{command_line()}\n{machine()}\nother load during the run: {load.share:.2f} of the cores busy with other work (timings inflated by it)\n")
    print(md_table(["size", "RSS with the texture (MiB)", "peak after all maps (MiB)", "peak after writing the set (MiB)",
                    "maps (s)", "writing 5 PNGs (s)"],
                   [[res["size"], f"{res['base_mib']:.0f}", f"{res['peak_maps_mib']:.0f}",
                     f"{res['peak_save_mib']:.0f}", f"{res['maps_s']:.1f}", f"{res['save_s']:.1f}"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
