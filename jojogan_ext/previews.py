"""Generator outputs as images, and when a training loop may afford a preview.

Sits below `runtime`, `train` and `restyle` (all three render images); it knows nothing of them.
"""

import math
import time

import torch
from PIL import Image
from torch import Tensor

from .nn.stylegan2 import Generator

# Previews may take at most 5 % of a training run's wall time (first and last are always shown); the schedule
# aims at 4 % because each wait is computed from the previous preview's cost, and costs fluctuate.
PREVIEW_BUDGET = 0.04
# ... and come at most this often, so a fast GPU loop does not flood the UI with images.
MIN_PREVIEW_INTERVAL_S = 2.0


def tensor_to_image(image: Tensor) -> Image.Image:
    """One generator output [3, H, W] in about [-1, 1] → an RGB PIL image."""
    array = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), "RGB")


@torch.no_grad()
def render_preview(generator: Generator, latent: Tensor) -> Image.Image:
    """The generator's rendering of one latent [1, n_latent, style_dim] (stored noise, so previews compare)."""
    return tensor_to_image(generator.synthesis(latent[:1], noise="const")[0])


class PreviewSchedule:
    """Decides after each training step whether to render a preview, keeping previews within a time budget.

    The first and last steps always get one. Otherwise a preview is due when the training time since the
    last one is at least `cost × (1 − budget) / budget` (cost = the last preview's measured seconds), and at
    least `min_interval` seconds: previews then take at most `budget` of the run, on any device.
    """

    def __init__(
        self, total_steps: int, budget: float = PREVIEW_BUDGET, min_interval: float = MIN_PREVIEW_INTERVAL_S
    ) -> None:
        if not 0 < budget <= 1:
            raise ValueError(f"preview budget must be in (0, 1], not {budget}")
        self.total_steps, self.budget, self.min_interval = total_steps, budget, min_interval
        self.last_cost = 0.0  # seconds the last preview took
        self.last_end = -math.inf  # time.monotonic() when it finished
        self.costs: list[float] = []  # every preview's seconds, for benchmarks and logs

    def due(self, step: int) -> bool:
        """Whether step `step` (1-based) should show a preview."""
        if step in (1, self.total_steps):
            return True
        wait = max(self.min_interval, self.last_cost * (1 - self.budget) / self.budget)
        return time.monotonic() - self.last_end >= wait

    def render(self, make_preview) -> Image.Image:
        """Call `make_preview()` and remember what it cost."""
        start = time.monotonic()
        image = make_preview()
        self.last_end = time.monotonic()
        self.last_cost = self.last_end - start
        self.costs.append(self.last_cost)
        return image
