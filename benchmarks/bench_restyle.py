"""Seconds to restyle one face in a 512×512 image at full size (random weights, given landmarks): end to end
and per stage (align, e4e, generator, paste). Prints one JSON line.
Usage: python -m benchmarks.bench_restyle [--device cuda] [--dtype float16|bfloat16] [--repeats 3]
"""

import argparse
import json

import numpy as np
import torch
from PIL import Image

from benchmarks.common import FIXTURE_DIR, median, peak_memory_mb, random_base, random_inverter, report, timed
from jojogan_ext.allocator import large_buffers_reused
from jojogan_ext.args import RestyleArgs
from jojogan_ext.faces.align import align_face, paste_back
from jojogan_ext.faces.detect import Face
from jojogan_ext.integration import DTYPES
from jojogan_ext.packs import save_pack
from jojogan_ext.previews import tensor_to_image
from jojogan_ext.restyle import Restyler
from jojogan_ext.runtime import Runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="e4e and generator precision")
    parser.add_argument("--models-dir", default="/tmp/jojogan_bench_models")
    options = parser.parse_args()
    device = torch.device(options.device)

    base = random_base(1024, device)
    dtype = DTYPES[options.dtype]
    runtime = Runtime(options.models_dir, device=device, dtype=dtype, base=base)
    runtime._inverter = random_inverter(device, dtype)
    save_pack(runtime.packs.path_for("bench"), base.generator, base=base.generator, title="bench")
    image = Image.open(FIXTURE_DIR / "astronaut.png").convert("RGB")
    landmarks = np.asarray(json.loads((FIXTURE_DIR / "landmarks.json").read_text())["reduction_5"]["points"])
    face = Face(box=(175.0, 76.0, 265.0, 166.0), score=1.0, landmarks5=landmarks)
    args = RestyleArgs(pack="bench")
    restyler = Restyler(runtime)
    restyler.restyle(image, args, faces=[face])  # warm-up, builds and caches the pack generator

    end_to_end = [timed(lambda: restyler.restyle(image, args, faces=[face]), device) for _ in range(options.repeats)]
    generator = runtime.pack_generator("bench")
    stages: dict[str, list[float]] = {"align": [], "e4e": [], "generator": [], "paste": []}

    def measure(stage: str, function):
        result = []

        def run():
            with large_buffers_reused(device):  # as `Restyler.restyle` runs e4e and the generator
                result.append(function())

        stages[stage].append(timed(run, device))
        return result[0]

    def render(w_plus):
        with torch.inference_mode():
            return tensor_to_image(generator.synthesis(w_plus.to(dtype))[0])

    for _ in range(options.repeats):
        aligned = measure("align", lambda: align_face(image, face.landmarks5, 1024))
        w_plus = measure("e4e", lambda a=aligned: runtime.invert([a.image]))
        crop = measure("generator", lambda w=w_plus: render(w))
        measure("paste", lambda a=aligned, c=crop: paste_back(image, [c], [a]))
    report(
        "restyle_one_face",
        {
            "image": "512x512, 1 face",
            "device": str(device),
            "dtype": options.dtype,
            "seconds_end_to_end": median(end_to_end),
            "stages_s": {name: median(values) for name, values in stages.items()},
            **peak_memory_mb(device),
        },
    )


if __name__ == "__main__":
    main()
