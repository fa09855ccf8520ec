"""Inversion: aligned faces → w+ with JoJoGAN's preprocessing, batching, refusals, and latent refinement."""

import numpy as np
import pytest
import torch
from PIL import Image

from jojogan_ext.errors import ImageError
from jojogan_ext.invert import Inverter, faces_to_tensor, refine
from jojogan_ext.nn.stylegan2 import Generator

from e4e_golden import golden_encoder, golden_latent_avg, read_manifest


@pytest.fixture(scope="module")
def golden_inverter(fixtures) -> Inverter:
    """An Inverter over the golden-filled 18-style encoder (built on meta, weights assigned: one copy)."""
    manifest = read_manifest(fixtures)
    return Inverter(golden_encoder(manifest), golden_latent_avg(manifest))


@pytest.fixture(scope="module")
def small_inverter(fixtures) -> Inverter:
    """The first 4 golden styles: a cheaper encoder whose codes still follow the input."""
    manifest = read_manifest(fixtures)
    return Inverter(golden_encoder(manifest, n_styles=4), golden_latent_avg(manifest)[:4], batch_size=2)


def to_model_input(image: Image.Image) -> torch.Tensor:
    """torchvision's ToTensor + Normalize([0.5]*3, [0.5]*3) on an RGB image, written out: [1, 3, H, W]."""
    pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    return pixels.float().div(255).sub(0.5).div(0.5)[None]


def test_inverts_an_aligned_face_like_jojogan(golden_inverter, fixtures):
    align = fixtures / "align"
    full_1024 = Image.open(align / "A_full_1024.png")
    # JoJoGAN's route: align at 1024, PIL bilinear to 256 — the fixture holds that resized image
    jojogan_256 = Image.open(align / "A_full_1024_to_256_bilinear.png")
    torch.testing.assert_close(faces_to_tensor(full_1024, 256), to_model_input(jojogan_256), rtol=0, atol=0)

    w_plus = golden_inverter(full_1024)
    assert w_plus.shape == (1, 18, 512) and w_plus.dtype == torch.float32
    assert torch.isfinite(w_plus).all()
    with torch.no_grad():
        # the same values in the same (NCHW) layout as the inverter's input: a permuted view would convolve in
        # another memory order and round differently (≈ 1e-5)
        by_hand = golden_inverter.encoder(to_model_input(jojogan_256).contiguous()) + golden_inverter.latent_avg
    torch.testing.assert_close(w_plus, by_hand, rtol=0, atol=0)
    assert w_plus.std() > 0.5  # golden weights keep the codes well scaled, so a wrong input would show


def test_batches_agree_with_single_faces(small_inverter, fixtures):
    faces = [Image.open(fixtures / "align" / name) for name in ("A_full_256.png", "C_up6_256.png", "A_full_1024.png")]
    together = small_inverter(faces)  # batches of 2 and 1
    assert together.shape == (3, 4, 512)
    alone = small_inverter(faces[1])  # [1, 4, 512]
    torch.testing.assert_close(together[1:2], alone, rtol=1e-4, atol=1e-4)  # same row; batch-size rounding only
    assert (together[0] - together[1]).abs().max() > 0.1 and (together[1] - together[2]).abs().max() > 0.1


def test_face_inputs_are_normalised_like_torchvision(fixtures):
    face = Image.open(fixtures / "align" / "A_full_256.png")
    as_tensor = to_model_input(face)  # [1, 3, 256, 256] in [-1, 1]
    torch.testing.assert_close(faces_to_tensor(face, 256), as_tensor, rtol=0, atol=0)
    torch.testing.assert_close(faces_to_tensor([face.convert("RGBA")], 256), as_tensor, rtol=0, atol=0)
    torch.testing.assert_close(faces_to_tensor(as_tensor, 256), as_tensor, rtol=0, atol=0)  # already 256: as is
    assert as_tensor.min() >= -1 and as_tensor.max() <= 1


def test_tensor_faces_are_resized_like_pil(fixtures):
    face = Image.open(fixtures / "align" / "A_full_1024.png")
    resized = faces_to_tensor(to_model_input(face), 256)  # antialiased bilinear in torch
    by_pil = faces_to_tensor(face, 256)
    assert resized.shape == (1, 3, 256, 256)
    assert (resized - by_pil).abs().max() < 2 / 255 * 2  # within PIL's uint8 rounding (the range is 2 wide)


def test_unusable_faces_are_refused(small_inverter):
    with pytest.raises(ImageError, match="I;16 pixels"):
        small_inverter(Image.new("I;16", (256, 256)))
    with pytest.raises(ImageError, match=r"\[B, 3, H, W\]"):
        small_inverter(torch.zeros(3, 256, 256))
    with pytest.raises(ImageError, match="no face images"):
        small_inverter([])


@pytest.fixture(scope="module")
def tiny_generator() -> Generator:
    torch.manual_seed(0)
    return Generator(64, style_dim=64, n_mlp=2, channel_max=16).eval()


def test_refinement_reduces_the_reconstruction_error(tiny_generator):
    generator = tiny_generator
    torch.manual_seed(1)
    with torch.no_grad():
        w_true = generator.mapping(torch.randn(2, 64))[:, None].repeat(1, generator.n_latent, 1)  # [2, 10, 64]
        target = generator.synthesis(w_true, noise="const")  # [2, 3, 64, 64]
    w_start = w_true + 0.5 * torch.randn_like(w_true)
    before = {name: p.clone() for name, p in generator.named_parameters()}
    losses = []

    w_refined = refine(w_start, target, generator, steps=30, lr=0.02, progress=lambda step, loss: losses.append(loss))

    with torch.no_grad():
        error_start = (generator.synthesis(w_start) - target).pow(2).mean()
        error_refined = (generator.synthesis(w_refined) - target).pow(2).mean()
    assert len(losses) == 30 and losses[0] == pytest.approx(error_start.item(), rel=1e-5)
    assert error_refined < 0.5 * error_start
    assert w_refined.shape == w_start.shape and not w_refined.requires_grad
    assert all(torch.equal(p, before[name]) for name, p in generator.named_parameters())  # generator unchanged
    assert all(p.requires_grad for p in generator.parameters())


def test_refinement_takes_a_loss_callable_and_images(tiny_generator):
    generator = tiny_generator
    w_start = generator.mean_latent(64, torch.Generator().manual_seed(2))[:, None].repeat(1, generator.n_latent, 1)
    with torch.no_grad():
        image = generator.synthesis(w_start + 0.5)  # [1, 3, 64, 64]
    pixels = ((image[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    target_face = Image.fromarray(pixels).resize((128, 128))  # a PIL face at another size
    l1_values = []

    def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        value = (a - b).abs().mean()
        l1_values.append(value.item())
        return value

    refined = refine(w_start, target_face, generator, steps=15, loss=l1, lr=0.05)
    assert len(l1_values) == 15 and l1_values[-1] < 0.8 * l1_values[0]
    assert refined.shape == w_start.shape
    with pytest.raises(ValueError, match="w_plus must be"):
        refine(torch.zeros(1, 18, 512), target_face, generator, steps=1)
    with pytest.raises(ValueError, match="LPIPS"):
        refine(w_start, target_face, generator, steps=1, loss="lpips")
