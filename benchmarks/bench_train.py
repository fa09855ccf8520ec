"""Seconds per JoJoGAN finetuning iteration at full size (config-f, random weights), real `Finetuner` path.

Prints one JSON line: median seconds/iteration after warm-up, peak RSS (and VRAM), achieved GFLOP/s.
Usage: python -m benchmarks.bench_train --size 1024 --iterations 4 [--device cuda] [--dtype float32|float16|bfloat16]
[--loss discriminator|lpips] [--no-cudnn-benchmark]
"""

import argparse
import time

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import FIXTURE_FACE, median, peak_memory_mb, random_base, random_inverter, report, timed
from jojogan_ext.args import TrainArgs
from jojogan_ext.integration import DTYPES
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
    parser.add_argument("--iterations", type=int, default=4, help="timed iterations (after one warm-up)")
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
        name="bench", iterations=options.iterations + 1, references_are_aligned=True, seed=0, loss=options.loss
    )
    tuner = Finetuner(runtime, [reference], args, None)
    setup = time.perf_counter() - setup_start

    with tuner.session():  # what `finetune` runs its loop inside
        warm_up = timed(tuner.step, device)
        times = [timed(tuner.step, device) for _ in range(options.iterations)]
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
            "seconds_per_iteration": median(times),
            "all_iterations_s": [round(t, 2) for t in times],
            "warm_up_s": round(warm_up, 2),
            "setup_s": round(setup, 1),
            "minimum_gflop_per_iteration": round(gflop, 1),
            "achieved_gflop_per_s": round(gflop / median(times), 1),
            **peak_memory_mb(device),
        },
    )


if __name__ == "__main__":
    main()
