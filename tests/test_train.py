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
from jojogan_ext.train import Finetuner, autocast_dtype, finetune


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
    pack = finetune(tiny_runtime, [reference], args, on_progress, preview_interval=0.0, preview_budget=1.0)
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
    # saved compact by default: the job says how it went, the pack records it and decodes on the base
    pack = load_pack(tiny_runtime.packs.folder / "quick.safetensors")
    assert pack.is_compact and "Compact: " in done.message and "PSNR" in done.message
    assert json.loads(pack.metadata["jojogan.compression"])["latents"] == 9  # 8 seeded + the first reference
    assert tiny_runtime.pack_generator("quick").size == tiny_runtime.base.generator.size


def test_half_precision_trains_under_autocast_with_float32_weights(tiny_runtime, reference):
    def run(dtype):
        tiny_runtime.dtype = dtype
        losses = []
        pack = finetune(
            tiny_runtime,
            [reference],
            aligned_args(iterations=12, learning_rate=5e-3),
            lambda step, total, loss, preview: losses.append(loss),
        )
        return pack, losses

    exact, exact_losses = run(torch.float32)
    half, half_losses = run(torch.bfloat16)  # CPU autocast knows bfloat16; CUDA also float16 with loss scaling
    assert all(tensor.dtype == torch.float32 for tensor in half.tensors.values())
    assert half_losses != exact_losses  # it really ran in half precision
    assert half_losses[0] == pytest.approx(exact_losses[0], rel=0.02)
    assert sum(half_losses[-4:]) < 0.9 * sum(half_losses[:4])
    base = tiny_runtime.base.generator.state_dict()
    learned = {key: (half.tensors[key] - base[key], exact.tensors[key] - base[key]) for key in exact.tensors}
    agreement = torch.nn.functional.cosine_similarity(
        torch.cat([a.flatten() for a, _ in learned.values()]), torch.cat([b.flatten() for _, b in learned.values()]), 0
    )
    assert agreement > 0.9  # the same update direction, within half precision's rounding


@pytest.mark.parametrize(
    ("device", "dtype", "expected"),
    [
        ("cpu", torch.float32, None),
        ("cpu", torch.bfloat16, torch.bfloat16),
        ("cpu", torch.float16, None),  # CPU autocast has no float16 in torch 2.1: train exactly instead
        ("cuda", torch.float16, torch.float16),
        ("cuda", torch.bfloat16, torch.bfloat16),
        ("cuda", torch.float32, None),
    ],
)
def test_autocast_precision_follows_the_runtime(device, dtype, expected):
    assert autocast_dtype(torch.device(device), dtype) == expected


def test_cudnn_autotuning_is_scoped_to_cuda_training(tiny_runtime, reference):
    tuner = Finetuner(tiny_runtime, [reference], aligned_args(iterations=1), None)
    assert not tuner.cudnn_benchmark and not tuner.scaler.is_enabled()
    previous = torch.backends.cudnn.benchmark
    tuner.cudnn_benchmark = True
    with tuner.session():
        assert torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.benchmark == previous
