"""Seconds and memory to compose a style pack at full size (random weights): a layer swap and a mix of two
float16 packs, end to end (read, check, hash, blend, preview, save), per stage, and the peak resident memory
each composition adds (with and without the preview render). Prints one JSON line.
Usage: python -m benchmarks.bench_compose [--size 1024] [--repeats 3] [--device cpu]
"""

import argparse
import gc
import resource
import tempfile
from pathlib import Path

import torch

from benchmarks.common import median, random_base, report, timed
from jojogan_ext.allocator import large_buffers_reused
from jojogan_ext.args import parse_recipe
from jojogan_ext.packs import StylePack, build_metadata
from jojogan_ext.runtime import Runtime


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def cpu_seconds() -> float:
    """CPU time this process has used (user + system, all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reset_peak() -> float:
    """Reset the peak resident size to the current one (Linux: clear_refs 5); returns the current MB."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return status_mb("VmRSS")


def write_random_pack(runtime: Runtime, name: str, seed: int) -> Path:
    """A float16 pack of the base's synthesis weights plus noise, built one tensor at a time."""
    base = runtime.base.generator
    noise = torch.Generator().manual_seed(seed)
    tensors = {
        key: (value.detach().cpu() + 0.1 * torch.randn(value.shape, generator=noise)).half()
        for key, value in base.synthesis_parameters().items()
    }
    metadata = build_metadata(base, base=base, title=name, base_fingerprint=runtime.base_fingerprint)
    return StylePack(tensors, metadata).save(runtime.packs.path_for(name), "float16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    device = torch.device(options.device)

    base = random_base(options.size, device, discriminator=False)
    with tempfile.TemporaryDirectory(prefix="jojogan-bench-compose-") as folder:
        runtime = Runtime(folder, device=device, base=base)
        fingerprint_s = timed(lambda: runtime.base_fingerprint, device)  # once per session, cached by the Runtime
        packs = [write_random_pack(runtime, name, seed) for seed, name in enumerate(("ink", "oil"))]
        recipes = {
            "swap": parse_recipe({"mode": "swap", "low": "ink", "high": "oil", "at": 32, "transition": 0.5}),
            "mix": parse_recipe({"mode": "mix", "weights": {"ink": 0.5, "oil": 0.3, "base": 0.2}}),
        }
        composer = runtime.composer
        seconds: dict[str, list[float]] = {name: [] for name in recipes}
        peaks: list[float] = []
        cpu_used: dict[str, list[float]] = {name: [] for name in recipes}
        for _ in range(options.repeats):
            for name, recipe in recipes.items():
                composer.clear()  # cold: the packs are read and hashed again
                baseline, cpu = reset_peak(), cpu_seconds()
                seconds[name].append(
                    timed(lambda r=recipe, n=name: runtime.compose_pack(f"composed {n}", r, overwrite=True), device)
                )
                peaks.append(status_mb("VmHWM") - baseline)
                cpu_used[name].append(cpu_seconds() - cpu)
        held: list[float] = []  # the same without the preview: what composing itself holds
        unpreviewed: list[float] = []
        for _ in range(options.repeats):
            composer.clear()
            baseline = reset_peak()
            unpreviewed.append(
                timed(
                    lambda: composer.compose_pack(recipes["mix"], "held").save(
                        runtime.packs.path_for("held"), "float16"
                    ),
                    device,
                )
            )
            held.append(status_mb("VmHWM") - baseline)
        stages: dict[str, list[float]] = {"read_and_check": [], "hash": [], "blend": [], "preview": []}
        recipe = recipes["swap"]
        for _ in range(options.repeats):
            composer.clear()
            files = composer.pack_files(recipe)
            stages["read_and_check"].append(timed(lambda f=files: composer.sources(f), device))
            sources = composer.sources(files)
            stages["hash"].append(timed(lambda s=sources: [source.fingerprint() for source in s.values()], device))
            stages["blend"].append(timed(lambda: composer.generator(recipe), device))
            composed = composer.generator(recipe)
            with large_buffers_reused(device):
                stages["preview"].append(timed(lambda g=composed: runtime.render_average_face(g), device))
            composer.clear()
        pack_mb = sum(path.stat().st_size for path in packs) / 2**20
        result_mb = (
            sum(p.numel() * 4 for p in base.generator.parameters()) / 2**20
            + sum(b.numel() * 4 for b in base.generator.buffers()) / 2**20
        )
    report(
        "compose_pack",
        {
            "size": options.size,
            "device": str(device),
            "sources": "two float16 packs (+ the base in the mix)",
            "seconds_swap": median(seconds["swap"]),
            "seconds_mix": median(seconds["mix"]),
            "cpu_seconds": {name: median(values) for name, values in cpu_used.items()},
            "seconds_mix_without_preview": median(unpreviewed),
            "all_seconds": {name: [round(s, 3) for s in values] for name, values in seconds.items()},
            "swap_stages_s": {name: median(values) for name, values in stages.items()},
            "base_fingerprint_once_s": round(fingerprint_s, 3),
            "peak_added_mb": round(max(peaks), 1),
            "peak_added_without_preview_mb": round(max(held), 1),
            "source_packs_mb": round(pack_mb, 1),
            "one_result_generator_mb": round(result_mb, 1),
        },
    )


if __name__ == "__main__":
    main()
