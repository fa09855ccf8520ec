"""Seconds for the Packs tab's live renderings (random weights): a Compose preview when a control changes (first
recipe: packs read and checked; next recipe: sources cached, blend + render; same recipe again: the cache), and a
pack tried on the test face (first visit: tensors hashed, pack loaded, rendered; second visit: the cache). The test
face's inversion is the average face (e4e's cost is paid once per test face, see bench_restyle). Prints one JSON line.
Usage: python -m benchmarks.bench_try_on [--size 1024] [--device cpu]
"""

import argparse
import tempfile

import torch

from benchmarks.bench_compose import write_random_pack
from benchmarks.common import random_base, report, timed
from jojogan_ext.args import parse_recipe
from jojogan_ext.runtime import Runtime
from jojogan_ext.try_on import TryOn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=1024)
    options = parser.parse_args()
    device = torch.device(options.device)

    base = random_base(options.size, device, discriminator=False)
    generator, latent_avg = base.generator, base.latent_avg

    def average_face(aligned: list) -> torch.Tensor:
        return latent_avg.expand(len(aligned), generator.n_latent, -1)  # [B, n_latent, style_dim]

    with tempfile.TemporaryDirectory(prefix="jojogan-bench-try-on-") as folder:
        runtime = Runtime(folder, device=device, base=base, inverter=average_face)
        for seed, name in enumerate(("ink", "oil")):
            write_random_pack(runtime, name, seed)
        runtime.base_fingerprint  # noqa: B018  (computed once per session, not part of a preview)
        try_on = TryOn(runtime)

        def swap(at: int) -> object:
            return parse_recipe({"mode": "swap", "low": "ink", "high": "oil", "at": at, "transition": 0.5})

        seconds = {
            "preview_first_recipe": timed(lambda: try_on.recipe(swap(16)), device),
            "preview_next_recipe": timed(lambda: try_on.recipe(swap(32)), device),
            "preview_same_recipe": timed(lambda: try_on.recipe(swap(32)), device),
        }
        try_on.remember_restyled(runtime.render_average_face(generator))
        seconds["try_on_first_visit"] = timed(lambda: try_on.pack("ink"), device)
        seconds["try_on_second_visit"] = timed(lambda: try_on.pack("ink"), device)
    report(
        "try_on",
        {
            "size": options.size,
            "device": str(device),
            "renders": try_on.renders,
            **{name: round(value, 4) for name, value in seconds.items()},
        },
    )


if __name__ == "__main__":
    main()
