"""Draw the README's composition picture: a base↔pack layer-swap strip on tiny random-weight models.

The test models are 64 px, so the swap resolution R runs 4 … 64 (R = 64 is the base itself). Their weights
are random: the images are textures, not faces; what they show is where each source's layers act.
Usage (from the repository root): PYTHONPATH=. python docs/compose_strip.py [docs/compose_strip.png]
"""

import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from jojogan_ext.args import parse_recipe
from jojogan_ext.checkpoints import StyleGAN2Checkpoint
from jojogan_ext.nn.stylegan2 import Generator
from jojogan_ext.packs import save_pack
from jojogan_ext.runtime import Runtime

SIZE, STYLE_DIM, SCALE, LABEL = 64, 128, 2, 18


def tiny_models() -> tuple[Generator, Generator, torch.Tensor]:
    """A tiny base generator, a 'pack' made from it with perturbed synthesis weights, and the base's mean w."""
    torch.manual_seed(0)
    base = Generator(SIZE, style_dim=STYLE_DIM, n_mlp=2, channel_max=16).eval().requires_grad_(False)
    styled = Generator.from_state_dict(base.state_dict()).eval().requires_grad_(False)
    with torch.no_grad():
        for parameter in styled.synthesis_parameters().values():
            parameter.add_(torch.randn_like(parameter) * 0.2)
        latent_avg = base.mean_latent(512, torch.Generator().manual_seed(3))[0]
    return base, styled, latent_avg


def main(target: Path) -> None:
    base, styled, latent_avg = tiny_models()
    with tempfile.TemporaryDirectory(prefix="jojogan-strip-") as folder:
        runtime = Runtime(folder, base=StyleGAN2Checkpoint(base, None, latent_avg))
        save_pack(runtime.packs.path_for("pack"), styled, base=base, title="pack", dtype="float32")
        rows = []
        for transition in (0.0, 1.0):
            cells = [("base", runtime.render_average_face(base))]
            for at in (32, 16, 8, 4):
                recipe = parse_recipe(
                    {"mode": "swap", "low": "base", "high": "pack", "at": at, "transition": transition}
                )
                cells.append((f"R={at}", runtime.render_average_face(runtime.composer.generator(recipe))))
            cells.append(("pack", runtime.render_average_face(styled)))
            rows.append((f"T={transition:g}", cells))
    side = SIZE * SCALE
    strip = Image.new("RGB", (LABEL * 3 + side * len(rows[0][1]), (side + LABEL) * len(rows)), "white")
    draw = ImageDraw.Draw(strip)
    for row, (name, cells) in enumerate(rows):
        top = row * (side + LABEL)
        draw.text((2, top + LABEL + side // 2), name, fill="black")
        for column, (label, image) in enumerate(cells):
            left = LABEL * 3 + column * side
            draw.text((left + 4, top + 3), label, fill="black")
            strip.paste(image.resize((side, side), Image.Resampling.NEAREST), (left, top + LABEL))
    strip.save(target, optimize=True)
    print(f"{target}: {target.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("compose_strip.png"))
