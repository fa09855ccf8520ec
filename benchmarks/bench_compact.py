"""Size against quality of compact (delta) style packs at full size, on what can be made without real weights.

Two steps, because the finetune is slow on a CPU:
  python -m benchmarks.bench_compact finetune --iterations 60 --out /tmp/finetune_1024.safetensors
      the real `Finetuner` (discriminator loss, the fixture face as reference) on the random-weight 1024 base
      (seed 0); saves the finetuned synthesis weights (float32) and the test latent used for the measurements.
  python -m benchmarks.bench_compact measure --finetune /tmp/finetune_1024.safetensors [--methods lowrank]
  python -m benchmarks.bench_compact measure --rank 16 --noise 0.2 [--relative 0.05]
      compacts the finetune (or a synthetic difference of known rank and noise share on the same base) at the
      default budget, with every method or one (plus unchanged and dense); prints one JSON line: method counts,
      stored MB against the full pack, PSNR, largest error, % of pixels off, rounds and seconds.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from benchmarks.common import FIXTURE_FACE, random_base, random_inverter, report
from jojogan_ext import delta
from jojogan_ext.args import CompactArgs, TrainArgs
from jojogan_ext.compact import compact_pack
from jojogan_ext.nn.stylegan2 import Generator
from jojogan_ext.packs import FORMAT_VERSION, StylePack, generator_fingerprint
from jojogan_ext.runtime import Runtime
from jojogan_ext.train import Finetuner

METHODS = {"all": delta.METHODS, "lowrank": ("same", "lowrank"), "int8": ("same", "int8")}


def finetune(options: argparse.Namespace) -> None:
    """Finetune the random-weight base for `--iterations` steps and save the synthesis weights (and the latent)."""
    device = torch.device("cpu")
    started = time.perf_counter()
    runtime = Runtime("/nonexistent", device=device, base=random_base(options.size, device))
    runtime._inverter = random_inverter(device)
    reference = Image.open(FIXTURE_FACE).convert("RGB")
    args = TrainArgs(name="bench", iterations=options.iterations, references_are_aligned=True, seed=0)
    tuner = Finetuner(runtime, [reference], args, None)
    setup = time.perf_counter() - started
    losses: list[float] = []

    def save(steps: int) -> None:
        tensors = {key: value.detach().clone() for key, value in tuner.generator.synthesis_parameters().items()}
        tensors["__latent__"] = tuner.run.preview_latent.detach().clone()
        save_file(tensors, str(options.out), {"iterations": str(steps), "losses": str(losses)})

    def on_progress(step: int, total: int, loss: float, preview) -> None:
        losses.append(round(loss, 4))
        print(f"step {step}/{total} loss {loss:.4f} at {time.perf_counter() - started:.0f} s", flush=True)
        if step % 10 == 0 or step == total:
            save(step)

    tuner.train(on_progress)
    report(
        "compact_finetune",
        {"size": options.size, "iterations": options.iterations, "setup_s": round(setup, 1), "losses": losses},
    )


def relative_change(tensors: dict[str, torch.Tensor], base: Generator) -> float:
    """‖finetuned − base‖ / ‖base‖ over all synthesis weights."""
    weights = base.synthesis_parameters()
    change = sum(float((tensors[key].float() - weights[key]).pow(2).sum()) for key in weights)
    return (change / sum(float(value.pow(2).sum()) for value in weights.values())) ** 0.5


def synthetic(base: Generator, rank: int, noise: float, relative: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every synthesis tensor changed by `relative` of its norm: a random rank-`rank` matrix, with `noise` of that
    change's norm replaced by full-rank Gaussian noise (vectors and small tensors: noise only)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, value in base.synthesis_parameters().items():
        rows, cols = delta.matrix_shape(value.shape)
        noisy = torch.randn(rows, cols, generator=generator)
        if min(rows, cols) > rank:
            low = torch.randn(rows, rank, generator=generator) @ torch.randn(rank, cols, generator=generator)
            change = (1 - noise) * low / low.norm() + noise * noisy / noisy.norm()
        else:
            change = noisy / noisy.norm()
        tensors[key] = value.detach() + (relative * value.norm() * change / change.norm()).reshape(value.shape)
    return tensors


def measure(options: argparse.Namespace) -> None:
    """Compact one finetune or synthetic difference at the default budget and report size and quality."""
    torch.manual_seed(0)  # the base of `finetune` (random_base draws the generator first)
    base = Generator(options.size).eval().requires_grad_(False)
    fingerprint = generator_fingerprint(base)
    latent = None
    if options.finetune:
        tensors = load_file(options.finetune)
        latent = tensors.pop("__latent__")
        case = {"case": "finetune", "iterations": int(safe_metadata(options.finetune).get("iterations", 0))}
    else:
        tensors = synthetic(base, options.rank, options.noise, options.relative)
        case = {"case": "synthetic", "rank": options.rank, "noise_share": options.noise}
    metadata = {"jojogan.format_version": FORMAT_VERSION, "jojogan.base": json.dumps({"sha256": fingerprint})}
    pack = StylePack(tensors, metadata)
    budget = CompactArgs(latents=options.latents)
    started = time.perf_counter()
    compacted, message = compact_pack(
        pack, base, fingerprint, budget, extra_latents=latent, methods=METHODS[options.methods]
    )
    seconds = time.perf_counter() - started
    record = json.loads(compacted.metadata.get("jojogan.compression", "{}"))
    with tempfile.TemporaryDirectory() as folder:
        file_bytes = compacted.save(Path(folder) / "bench.safetensors").stat().st_size
    report(
        "compact",
        {
            **case,
            "size": options.size,
            "relative_change": round(relative_change(tensors, base), 4),
            "methods_allowed": options.methods,
            "file_mb": round(file_bytes / 1e6, 2),
            "full_mb": round(sum(v.numel() * 2 for v in base.synthesis_parameters().values()) / 1e6, 2),
            "compact": compacted.is_compact,
            "methods": record.get("methods"),
            "ranks": record.get("ranks"),
            "measured": record.get("measured"),
            "latents": record.get("latents"),
            "rounds": record.get("rounds"),
            "pinned": record.get("pinned"),
            "tolerance": record.get("tolerance"),
            "seconds": round(seconds, 1),
            "message": message,
        },
    )


def safe_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file."""
    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata() or {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    tune = commands.add_parser("finetune")
    tune.add_argument("--size", type=int, default=1024)
    tune.add_argument("--iterations", type=int, default=60)
    tune.add_argument("--out", type=Path, required=True)
    gauge = commands.add_parser("measure")
    gauge.add_argument("--size", type=int, default=1024)
    gauge.add_argument("--finetune", type=Path, help="synthesis weights saved by `finetune` (else synthetic)")
    gauge.add_argument("--rank", type=int, default=16, help="rank of the synthetic difference")
    gauge.add_argument("--noise", type=float, default=0.0, help="share of full-rank noise in the synthetic difference")
    gauge.add_argument("--relative", type=float, default=0.05, help="‖difference‖ / ‖weights‖ per tensor")
    gauge.add_argument("--methods", choices=list(METHODS), default="all")
    gauge.add_argument("--latents", type=int, default=8, help="seeded latents measured (plus the finetune's face)")
    options = parser.parse_args()
    if options.command == "finetune":
        finetune(options)
    else:
        measure(options)


if __name__ == "__main__":
    main()
