"""One JoJoGAN finetune step (both golden variants) with our mixing, loss, gradients and Adam step."""

import json

import pytest
import torch
from safetensors.torch import load_file

from jojogan_ext.checkpoints import load_stylegan2
from jojogan_ext.train import feature_loss, mix_latents, style_layers

PARAMS = ["convs.0.conv.weight", "to_rgbs.0.conv.modulation.weight", "conv1.noise.weight"]


@pytest.fixture(scope="module")
def step_data(fixtures):
    folder = fixtures / "stylegan2"
    manifest = json.loads((folder / "tiny64_manifest.json").read_text())["finetune_step"]
    return {
        "folder": folder,
        "variants": manifest["variants"],
        "inputs": load_file(folder / "tiny64_inputs.safetensors"),
        "expected": load_file(folder / "tiny64_finetune_step_f64.safetensors"),
    }


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected).norm() / expected.norm())


@pytest.mark.parametrize("variant", ["A", "B"])
def test_one_finetune_step_matches_reference(step_data, variant):
    spec, inputs, expected = step_data["variants"][variant], step_data["inputs"], step_data["expected"]
    base = load_stylegan2(step_data["folder"] / "tiny64_ckpt.pt")
    generator, discriminator = base.generator, base.discriminator
    generator.train()
    parameters = generator.synthesis_parameters()
    for parameter in parameters.values():
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters.values(), lr=2e-3, betas=(0.0, 0.99))

    with torch.no_grad():
        random_w = generator.mapping(inputs[f"ft_z_mean_w_{variant}"])
        real_features = discriminator.features(inputs["ft_targets"])
    latents = inputs["ft_latents"]
    mixed = mix_latents(latents, random_w, spec["id_swap"], spec["alpha_user"])
    prefix = f"ft{variant}_"
    torch.testing.assert_close(
        random_w[:, None].expand_as(latents).double(), expected[prefix + "mean_w"], rtol=0, atol=2e-5
    )
    torch.testing.assert_close(mixed.double(), expected[prefix + "in_latent"], rtol=0, atol=2e-5)

    image = generator.synthesis(mixed, noise="const")
    torch.testing.assert_close(image.double(), expected[prefix + "fake_img"], rtol=0, atol=4e-4)
    fake_features = discriminator.features(image)
    per_feature = torch.stack(
        [torch.nn.functional.l1_loss(f, r) for f, r in zip(fake_features, real_features, strict=True)]
    )
    loss = feature_loss(fake_features, real_features)
    torch.testing.assert_close(per_feature.double(), expected[prefix + "loss_per_feature"], rtol=1e-5, atol=0)
    torch.testing.assert_close(loss.double().view(1), expected[prefix + "loss"], rtol=1e-5, atol=0)

    optimizer.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in discriminator.parameters())
    assert all(p.grad is None for name, p in generator.named_parameters() if name.startswith("style."))
    for name in PARAMS:
        assert relative_error(parameters[name].grad, expected[prefix + "grad." + name]) < 1e-4, name
    optimizer.step()
    for name in PARAMS:
        torch.testing.assert_close(
            parameters[name].detach().double(), expected[prefix + "param_after_step." + name], rtol=0, atol=1e-5
        )
    with torch.no_grad():
        after = feature_loss(discriminator.features(generator.synthesis(mixed)), real_features)
    torch.testing.assert_close(after.double().view(1), expected[prefix + "loss_after_step"], rtol=1e-5, atol=0)


def test_style_layers():
    assert style_layers(18, preserve_color=False) == list(range(7, 18))
    assert style_layers(18, preserve_color=True) == [9, 11, 15, 16, 17]
    assert style_layers(10, preserve_color=True) == [9]


def test_mix_latents_strength_endpoints():
    latents, random_w = torch.randn(2, 10, 8), torch.randn(2, 8)
    layers = [7, 8, 9]
    assert torch.equal(mix_latents(latents, random_w, layers, 0.0), latents)
    full = mix_latents(latents, random_w, layers, 1.0)
    assert torch.equal(full[:, :7], latents[:, :7])
    torch.testing.assert_close(full[:, 7:], random_w[:, None].expand(2, 3, 8))
