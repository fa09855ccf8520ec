"""Training previews: within their time budget on any device, first and last always; no import circle."""

import itertools
import subprocess
import sys

import pytest
from PIL import Image

from jojogan_ext import previews
from jojogan_ext.args import TrainArgs
from jojogan_ext.previews import PreviewSchedule
from jojogan_ext.train import Finetuner


class FakeClock:
    """time.monotonic for the schedule, advanced by hand: steps and previews of known cost."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("step_s", "preview_s"), [(5.2, 1.0), (0.05, 0.02), (0.5, 2.0)])
def test_schedule_keeps_previews_within_five_percent(monkeypatch, step_s, preview_s):
    """CPU-like (5.2 s steps, 1 s previews), GPU-like and slow-preview loops all stay within the budget."""
    clock = FakeClock()
    monkeypatch.setattr(previews.time, "monotonic", clock)
    total = 300
    schedule = PreviewSchedule(total)
    shown = []

    def make_preview():
        clock.now += preview_s
        return "image"

    for step in range(1, total + 1):
        clock.now += step_s
        if schedule.due(step):
            schedule.render(make_preview)
            shown.append(step)
    assert shown[0] == 1 and shown[-1] == total
    interior = len(shown) - 2
    assert interior >= 1  # previews keep coming during the run
    share = interior * preview_s / (total * step_s + interior * preview_s)
    assert share <= 0.05
    every_step = (total - 2) * preview_s / (total * step_s + (total - 2) * preview_s)
    assert every_step > 0.05  # the old 2-second rule would have broken the budget here
    assert schedule.costs == pytest.approx([preview_s] * len(shown))


def test_schedule_never_previews_more_often_than_the_interval(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(previews.time, "monotonic", clock)
    schedule = PreviewSchedule(100, min_interval=2.0)
    shown = []
    for step in range(1, 101):
        clock.now += 0.1  # previews here cost nothing, so only the interval limits them
        if schedule.due(step):
            schedule.render(lambda: None)
            shown.append(step)
    gaps = [b - a for a, b in itertools.pairwise(shown[:-1])]  # the last step always gets one
    assert gaps and min(gaps) >= 20


def test_budget_must_be_a_share():
    with pytest.raises(ValueError, match="preview budget"):
        PreviewSchedule(10, budget=0.0)
    with pytest.raises(ValueError, match="preview budget"):
        PreviewSchedule(10, budget=1.5)


def test_real_training_loop_shows_first_and_last_and_spaces_the_rest(tiny_runtime, fixtures):
    reference = Image.open(fixtures / "align" / "A_full_256.png").convert("RGB")
    args = TrainArgs(name="t", iterations=30, references_are_aligned=True, seed=1)
    tuner = Finetuner(tiny_runtime, [reference], args, None)
    seen = []
    schedule = PreviewSchedule(args.iterations, min_interval=0.0)
    tuner.train(lambda step, total, loss, preview: seen.append((step, preview)), schedule=schedule)
    steps_with_preview = [step for step, preview in seen if preview is not None]
    assert [step for step, _ in seen] == list(range(1, 31))
    assert steps_with_preview[0] == 1 and steps_with_preview[-1] == 30
    assert len(steps_with_preview) < 30  # previews are spaced by their measured cost
    assert all(isinstance(preview, Image.Image) for _, preview in seen if preview is not None)
    assert len(schedule.costs) == len(steps_with_preview) and all(cost > 0 for cost in schedule.costs)


def test_runtime_does_not_import_training():
    """Preview rendering lives below runtime and train: importing the runtime must not pull in train."""
    code = "import sys, jojogan_ext.runtime; print('jojogan_ext.train' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
