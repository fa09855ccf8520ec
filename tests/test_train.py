"""JoJoGAN finetuning end to end on tiny real models: loss goes down, packs are valid, cancel is clean."""

import json

import lpips
import pytest
import torch
from PIL import Image

from jojogan_ext.args import TrainArgs
from jojogan_ext.errors import BusyError, CancelledError, JojoganError
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.packs import load_pack
from jojogan_ext.train import finetune


@pytest.fixture()
def reference(fixtures) -> Image.Image:
    return Image.open(fixtures / "align" / "A_full_256.png").convert("RGB")


def aligned_args(**values) -> TrainArgs:
    return TrainArgs(**({"name": "test", "references_are_aligned": True, "seed": 7} | values))


def test_finetune_lowers_the_loss_and_makes_a_valid_pack(tiny_runtime, reference, tmp_path):
    losses, previews = [], []

    def on_progress(step, total, loss, preview):
        losses.append((step, loss))
        previews.append(preview)

    args = aligned_args(iterations=20, learning_rate=5e-3)
    pack = finetune(tiny_runtime, [reference], args, on_progress, preview_interval=0.0)
    assert [step for step, _ in losses] == list(range(1, 21))
    first, last = sum(loss for _, loss in losses[:5]) / 5, sum(loss for _, loss in losses[-5:]) / 5
    assert last < 0.9 * first, losses
    assert all(isinstance(p, Image.Image) and p.size == (64, 64) for p in previews)

    path = pack.save(tmp_path / "test.safetensors", dtype="float32")
    loaded = load_pack(path)
    training = loaded.json_field("jojogan.training")
    assert training["iterations"] == 20 and training["references"] == 1 and training["seed"] == 7
    assert loaded.metadata["modelspec.title"] == "test"
    base = tiny_runtime.base.generator
    changed = loaded.generator(base, base_fingerprint=tiny_runtime.base_fingerprint)
    assert not torch.equal(changed.conv1.conv.weight, base.conv1.conv.weight)
    assert torch.equal(changed.style[1].weight, base.style[1].weight)  # the mapping is never trained
    assert (tmp_path / "test.preview.png").is_file()


def test_seeded_runs_are_reproducible(tiny_runtime, reference):
    args = aligned_args(iterations=3)
    a = finetune(tiny_runtime, [reference], args).tensors
    b = finetune(tiny_runtime, [reference], args).tensors
    assert all(torch.equal(a[key], b[key]) for key in a)
    c = finetune(tiny_runtime, [reference], aligned_args(iterations=3, seed=8)).tensors
    assert not all(torch.equal(a[key], c[key]) for key in a)


def test_multi_shot_preserve_color_and_lpips(tiny_runtime, reference):
    tiny_runtime._lpips = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval()
    flipped = reference.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    steps = []
    args = aligned_args(iterations=2, loss="lpips", preserve_color=True, identity_weight=0.5)
    record = lambda step, total, loss, preview: steps.append(loss)  # noqa: E731
    pack = finetune(tiny_runtime, [reference, flipped], args, record, test_face=reference, preview_interval=0.0)
    assert len(steps) == 2 and all(loss > 0 for loss in steps)
    assert json.loads(pack.metadata["jojogan.training"])["references"] == 2


def test_cancel_stops_within_one_step(tiny_runtime, reference):
    seen = []
    with pytest.raises(CancelledError, match="no style pack was saved"):
        finetune(
            tiny_runtime,
            [reference],
            aligned_args(iterations=50),
            lambda step, total, loss, preview: seen.append(step),
            should_stop=lambda: len(seen) >= 3,
            preview_interval=0.0,
        )
    assert seen == [1, 2, 3]


def test_clear_errors(tiny_runtime, reference):
    with pytest.raises(JojoganError, match="at least one reference"):
        finetune(tiny_runtime, [], aligned_args())
    with pytest.raises(JojoganError, match="needs a test face"):
        finetune(tiny_runtime, [reference], aligned_args(identity_weight=1.0))
    with pytest.raises(JojoganError, match="No face was found in reference 1"):
        finetune(tiny_runtime, [Image.new("RGB", (200, 200), "gray")], aligned_args(references_are_aligned=False))


def test_jobs_run_one_at_a_time_and_cancel_leaves_no_file(tiny_runtime, reference):
    jobs = TrainingJobs(tiny_runtime)
    job = jobs.start([reference], aligned_args(name="slow", iterations=500))
    with pytest.raises(BusyError):
        jobs.start([reference], aligned_args(name="other", iterations=2))
    jobs.cancel(job.id)
    assert jobs.wait(job.id, timeout=60).state == "cancelled"
    assert list(tiny_runtime.packs.folder.iterdir()) == []

    done = jobs.wait(jobs.start([reference], aligned_args(name="quick", iterations=2)).id, timeout=120)
    assert done.state == "done", done.message
    assert done.pack_name == "quick" and done.summary()["step"] == 2
    assert [info.name for info in tiny_runtime.packs.list()] == ["quick"]
    assert sorted(p.name for p in tiny_runtime.packs.folder.iterdir()) == ["quick.preview.png", "quick.safetensors"]
