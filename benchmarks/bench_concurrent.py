"""Peak memory of N concurrent restyles through the REST API (random weights, given landmarks): how much the
device-slot bound saves. Run each case in its own process (peak RSS only grows). Prints one JSON line.
Usage: python -m benchmarks.bench_concurrent [--size 64|1024] [--requests 16] [--slots 1] [--device cuda]
"""

import argparse
import base64
import json
import tempfile
import threading
import time

import numpy as np
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from benchmarks.common import FIXTURE_DIR, peak_memory_mb, random_base, random_inverter, report
from jojogan_ext.api import API_PREFIX, create_router
from jojogan_ext.checkpoints import StyleGAN2Checkpoint
from jojogan_ext.faces.detect import Face
from jojogan_ext.invert import Inverter
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.nn.e4e import Encoder4Editing
from jojogan_ext.nn.stylegan2 import Discriminator, Generator
from jojogan_ext.packs import save_pack
from jojogan_ext.runtime import Runtime


class GivenFaces:
    """Answers detection with the fixture's landmarks (the detector is not what is measured here)."""

    def __init__(self, faces: list[Face]):
        self.faces = faces

    def detect(self, image: Image.Image, **options: object) -> list[Face]:
        return list(self.faces)


def tiny_models(device: torch.device) -> tuple[StyleGAN2Checkpoint, Inverter]:
    """The test suite's tiny sizes: a 64-px generator (16 channels) and a 16-wide e4e."""
    torch.manual_seed(0)
    generator = Generator(64, style_dim=128, n_mlp=2, channel_max=16).to(device).eval()
    base = StyleGAN2Checkpoint(generator, Discriminator(64, channel_max=16).to(device).eval(), torch.zeros(128))
    encoder = Encoder4Editing(n_styles=generator.n_latent, width=16).to(device).eval()
    return base, Inverter(encoder, torch.zeros(generator.n_latent, 128, device=device), device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, choices=[64, 1024], default=64)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--slots", type=int, default=1, help="the runtime's device slots (requests ≈ unbounded)")
    options = parser.parse_args()
    device = torch.device(options.device)

    if options.size == 64:
        base, inverter = tiny_models(device)
    else:
        base, inverter = random_base(1024, device), random_inverter(device)
    runtime = Runtime(tempfile.mkdtemp(prefix="jojogan-bench-"), device=device, base=base, inverter=inverter,
                      device_slots=options.slots)  # fmt: skip
    landmarks = np.asarray(json.loads((FIXTURE_DIR / "landmarks.json").read_text())["reduction_5"]["points"])
    runtime._detector = GivenFaces([Face(box=(175.0, 76.0, 265.0, 166.0), score=1.0, landmarks5=landmarks)])
    save_pack(runtime.packs.path_for("bench"), base.generator, base=base.generator, title="bench")
    image = base64.b64encode((FIXTURE_DIR / "astronaut.png").read_bytes()).decode()
    app = FastAPI()
    app.include_router(create_router(runtime, TrainingJobs(runtime)), prefix=API_PREFIX)
    client = TestClient(app)
    body = {"image": image, "args": {"pack": "bench"}}
    statuses, waits = [], []

    def restyle() -> None:
        answer = client.post(f"{API_PREFIX}/restyle", json=body)
        statuses.append(answer.status_code)
        waits.append("waited" in answer.json().get("message", ""))

    started = time.perf_counter()
    threads = [threading.Thread(target=restyle) for _ in range(options.requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report(
        "concurrent_restyles",
        {
            "size": options.size,
            "requests": options.requests,
            "device_slots": options.slots,
            "device": str(device),
            "statuses": sorted(set(statuses)),
            "said_they_waited": sum(waits),
            "seconds": round(time.perf_counter() - started, 2),
            **peak_memory_mb(device),
        },
    )


if __name__ == "__main__":
    main()
