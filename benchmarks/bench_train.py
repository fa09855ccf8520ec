"""Seconds per JoJoGAN finetuning iteration at full size (config-f, random weights), timed in the loop the
UI, API and CLI run: `Finetuner.train` with a progress callback, so previews are rendered as in real use.

Prints one JSON line: the median `step()` alone, the median preview cost, and in steady state (without the
warm-up step and the first and last previews every run has, as a 300-iteration run amortizes them) seconds
per iteration including previews and the previews' share; peak RSS (and VRAM) with what is loaded; GFLOP/s.
Usage: python -m benchmarks.bench_train --size 1024 --iterations 8 [--device cuda] [--dtype float32|float16|bfloat16]
[--loss discriminator|lpips] [--no-cudnn-benchmark]
"""

import argparse
import itertools
import time

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import FIXTURE_FACE, median, peak_memory_mb, random_base, random_inverter, report
from jojogan_ext.args import TrainArgs
from jojogan_ext.integration import DTYPES
from jojogan_ext.previews import PreviewSchedule
from jojogan_ext.runtime import Runtime
from jojogan_ext.train import Finetuner


def forward_gflop(function) -> float:
    """Forward FLOPs of one call, counted by torch (its backward counts are wrong in torch 2.1)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops() / 1e9


def minimum_gflop(tuner: Finetuner) -> float:
    """The least work one iteration needs: generator forward + backward (≈ 3× forward) and the
    discriminator's feature pass forward + input gradient only (≈ 2× forward)."""
    latents = tuner.run.latents
    generator_gflop = forward_gflop(lambda: tuner.generator.synthesis(latents))
    discriminator_gflop = forward_gflop(lambda: tuner.runtime.base.discriminator.features(tuner.run.targets))
    return 3 * generator_gflop + 2 * discriminator_gflop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=8, help="iterations of the timed loop")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--loss", choices=["discriminator", "lpips"], default="discriminator")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument(
        "--dtype", choices=list(DTYPES), default="float32", help="training precision (half: autocast, CUDA)"
    )
    parser.add_argument("--no-cudnn-benchmark", action="store_true", help="keep cuDNN's default algorithms")
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    device = torch.device(options.device)

    setup_start = time.perf_counter()
    runtime = Runtime(
        "/nonexistent",
        device=device,
        dtype=DTYPES[options.dtype],
        base=random_base(options.size, device),
        cudnn_benchmark=not options.no_cudnn_benchmark,
    )
    runtime._inverter = random_inverter(device)
    if options.loss == "lpips":  # LPIPS' own linear heads on a random VGG16 (speed does not depend on values)
        import lpips

        runtime._lpips = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).to(device).eval().requires_grad_(False)
    reference = Image.open(FIXTURE_FACE).convert("RGB")
    args = TrainArgs(
        name="bench", iterations=options.iterations, references_are_aligned=True, seed=0, loss=options.loss
    )
    tuner = Finetuner(runtime, [reference], args, None)
    setup = time.perf_counter() - setup_start

    schedule = PreviewSchedule(args.iterations)  # what `finetune` uses for the UI, the API and the CLI
    ends, previewed = [time.perf_counter()], []

    def on_progress(step, total, loss, preview):  # the UI's callback does little more than store these
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        ends.append(time.perf_counter())
        previewed.append(preview is not None)

    tuner.train(on_progress, schedule=schedule)
    iteration_s = [b - a for a, b in itertools.pairwise(ends)]
    preview_costs = _costs_per_step(previewed, schedule.costs)
    step_s = [t - cost for t, cost in zip(iteration_s, preview_costs, strict=True)]
    # steady state, as in a 300-iteration run: without the warm-up step and the forced first and last previews
    steady_steps, steady_previews = sum(step_s[1:]), sum(preview_costs[1:-1])
    steady_iterations = max(1, args.iterations - 1)
    gflop = minimum_gflop(tuner)
    report(
        "train_iteration",
        {
            "size": options.size,
            "device": str(device),
            "loss": options.loss,
            "dtype": options.dtype,
            "autocast": str(tuner.autocast_dtype).removeprefix("torch.") if tuner.autocast_dtype else None,
            "cudnn_benchmark": tuner.cudnn_benchmark,
            "seconds_per_step": median(step_s[1:] or step_s),  # step() alone; the first step warms up
            "all_steps_s": [round(t, 2) for t in step_s],
            "previews": len(schedule.costs),
            "preview_steps": [step for step, shown in enumerate(previewed, 1) if shown],
            "preview_s": median(schedule.costs),
            "seconds_per_iteration": round((steady_steps + steady_previews) / steady_iterations, 3),
            "preview_share": round(steady_previews / max(steady_steps + steady_previews, 1e-9), 4),
            "preview_share_whole_loop": round(sum(preview_costs) / sum(iteration_s), 4),  # incl. first, last
            "setup_s": round(setup, 1),
            "minimum_gflop_per_iteration": round(gflop, 1),
            "achieved_gflop_per_s": round(gflop / median(step_s[1:] or step_s), 1),
            "loaded": ["generator (base and the trainable copy)", "discriminator", "e4e encoder (held)"],
            **peak_memory_mb(device),
        },
    )


def _costs_per_step(previewed: list[bool], costs: list[float]) -> list[float]:
    """Each step's preview cost (0 where it had none), in step order."""
    remaining = iter(costs)
    return [next(remaining) if shown else 0.0 for shown in previewed]


if __name__ == "__main__":
    main()
