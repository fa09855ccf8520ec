"""Our StyleGAN2 against golden outputs of the reference implementation (tiny64, see the fixture README)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from jojogan_ext.checkpoints import load_stylegan2
from jojogan_ext.nn.ops import conv_layout, fused_leaky_relu, make_kernel, upfirdn2d

ACTIVATION_MODULES = ["conv1", "to_rgb1"] + [
    name for block in range(4) for name in (f"convs.{2 * block}", f"convs.{2 * block + 1}", f"to_rgbs.{block}")
]


@pytest.fixture(scope="module")
def golden(fixtures):
    folder = fixtures / "stylegan2"
    manifest = json.loads((folder / "tiny64_manifest.json").read_text())
    return {
        "inputs": load_file(folder / "tiny64_inputs.safetensors"),
        "expected": load_file(folder / "tiny64_golden_f64.safetensors"),
        "tolerance": {name: v["recommended_atol_float32_impl"] for name, v in manifest["golden_f64"].items()},
        "folder": folder,
    }


@pytest.fixture(scope="module", params=[None, False], ids=["device_layout", "nchw"])
def models(golden, request):
    """The tiny models in the layout the CPU picks (channels-last; the generator only without gradients) and in
    plain NCHW."""
    models = load_stylegan2(golden["folder"] / "tiny64_ckpt.pt")
    models.discriminator.channels_last = request.param
    models.generator.channels_last = request.param
    return models


def check(golden, name: str, actual: torch.Tensor) -> None:
    expected = golden["expected"][name]
    torch.testing.assert_close(actual.double(), expected, rtol=0, atol=golden["tolerance"][name], msg=name)


def test_ops_match_reference(golden):
    x, x5 = golden["inputs"]["op_x"], golden["inputs"]["op_x5"]
    kernel = make_kernel([1, 3, 3, 1])
    check(golden, "op_kernel", kernel)
    check(golden, "op_upfirdn_up2_pad21", upfirdn2d(x, kernel * 4, up=2, pad=(2, 1)))
    check(golden, "op_upfirdn_pad11_k4", upfirdn2d(x, kernel * 4, pad=(1, 1)))
    check(golden, "op_upfirdn_pad22", upfirdn2d(x, kernel, pad=(2, 2)))
    check(golden, "op_upfirdn_pad11", upfirdn2d(x, kernel, pad=(1, 1)))
    check(golden, "op_upfirdn_down2_pad11_odd", upfirdn2d(x5, kernel, down=2, pad=(1, 1)))
    check(golden, "op_flrelu", fused_leaky_relu(x, golden["inputs"]["op_bias3"]))
    check(golden, "op_flrelu_2d", fused_leaky_relu(golden["inputs"]["op_lin_x"], golden["inputs"]["op_lin_bias"]))


def test_ops_are_differentiable_in_float64():
    kernel = make_kernel([1, 3, 3, 1]).double()
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: upfirdn2d(t, kernel * 4, up=2, pad=(2, 1)), (x,))
    assert torch.autograd.gradcheck(lambda t: upfirdn2d(t, kernel, down=2, pad=(1, 1)), (x,))
    assert torch.autograd.gradcheck(lambda t: upfirdn2d(t, kernel, pad=(-1, 2)), (x,))
    lopsided = torch.rand(3, 4, dtype=torch.float64)  # checks the flip and the padding of the custom backward
    for pad in ((0, 0), (1, 1), (2, 2)):
        assert torch.autograd.gradcheck(lambda t, p=pad: upfirdn2d(t, lopsided, pad=p), (x,))
    assert torch.autograd.gradcheck(lambda t, b: fused_leaky_relu(t, b), (x, bias))


def test_negative_padding_crops():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    one = torch.ones(1, 1)
    torch.testing.assert_close(upfirdn2d(x, one, pad=(-1, -2)), x[:, :, 1:4, 1:4])


def test_mapping_and_mean_latent(golden, models):
    generator, inputs = models.generator, golden["inputs"]
    with torch.no_grad():
        check(golden, "mapping_w", generator.mapping(inputs["z"]))
        check(golden, "mean_latent", generator.mapping(inputs["z_for_mean_latent"]).mean(0, keepdim=True))


def test_synthesis_variants(golden, models):
    generator, inputs = models.generator, golden["inputs"]
    n = generator.n_latent
    with torch.no_grad():
        w, w2 = generator.mapping(inputs["z"]), generator.mapping(inputs["z2"])
        mean = generator.mapping(inputs["z_for_mean_latent"]).mean(0, keepdim=True)

        latent = w[:, None].repeat(1, n, 1)
        check(golden, "latent_z", latent)
        check(golden, "img_z", generator.synthesis(latent))

        truncated = (mean + 0.7 * (w - mean))[:, None].repeat(1, n, 1)
        check(golden, "latent_trunc07", truncated)
        check(golden, "img_trunc07", generator.synthesis(truncated))
        check(golden, "jojo_img_trunc07", generator.synthesis(truncated))

        mixed = torch.cat([w[:, None].repeat(1, 4, 1), w2[:, None].repeat(1, n - 4, 1)], 1)
        check(golden, "latent_mix_a", mixed)
        check(golden, "img_mix_a", generator.synthesis(mixed))

        t1, t2 = mean + 0.5 * (w - mean), mean + 0.5 * (w2 - mean)
        mixed_truncated = torch.cat([t1[:, None].repeat(1, 9, 1), t2[:, None].repeat(1, n - 9, 1)], 1)
        check(golden, "latent_mix_b_trunc05", mixed_truncated)
        check(golden, "img_mix_b_trunc05", generator.synthesis(mixed_truncated))

        wplus = inputs["wplus"]
        check(golden, "img_wplus", generator.synthesis(wplus))
        check(golden, "jojo_img_wplus", generator(wplus))
        check(golden, "img_wplus_trunc05_rosinality", generator.synthesis(mean + 0.5 * (wplus - mean)))
        noise = [inputs[f"noise_explicit_{i}"] for i in range(generator.num_noise_layers)]
        check(golden, "img_wplus_explicit_noise", generator.synthesis(wplus, noise=noise))


def test_per_layer_activations(golden, models):
    generator = models.generator
    captured = {}
    hooks = [
        generator.get_submodule(name).register_forward_hook(
            lambda module, args, out, name=name: captured.__setitem__(name, out[0:1])
        )
        for name in ACTIVATION_MODULES
    ]
    try:
        with torch.no_grad():
            generator.synthesis(golden["inputs"]["wplus"])
    finally:
        for hook in hooks:
            hook.remove()
    for name in ACTIVATION_MODULES:
        check(golden, "act_" + name.replace(".", "_"), captured[name])
    # the CPU runs the synthesis channels-last unless told otherwise
    layout = torch.channels_last if generator.channels_last is None else torch.contiguous_format
    assert captured["convs.6"].is_contiguous(memory_format=layout)


def test_generator_gradients_agree_in_both_layouts(golden):
    """Training runs channels-last on CPU: its weight gradients equal NCHW's within float32 rounding."""
    generator = load_stylegan2(golden["folder"] / "tiny64_ckpt.pt").generator.requires_grad_(True)
    gradients = {}
    for channels_last in (True, False):
        generator.channels_last = channels_last
        generator.zero_grad()
        generator.synthesis(golden["inputs"]["wplus"]).square().mean().backward()
        gradients[channels_last] = {name: p.grad.clone() for name, p in generator.synthesis_parameters().items()}
    for name, gradient in gradients[False].items():
        torch.testing.assert_close(gradients[True][name], gradient, rtol=1e-4, atol=1e-6, msg=name)


def test_conv_layout_picks_channels_last_on_cpu_only_by_default():
    x = torch.randn(1, 4, 5, 6)
    assert conv_layout(x).is_contiguous(memory_format=torch.channels_last)
    assert conv_layout(x, channels_last=False).is_contiguous()
    assert torch.equal(conv_layout(x), x)
    meta = torch.empty(1, 4, 5, 6, device="meta")
    assert conv_layout(meta).is_contiguous()


def test_random_noise_differs_per_call(models):
    generator = models.generator
    w = torch.zeros(1, generator.n_latent, generator.style_dim)
    with torch.no_grad():
        a, b = generator.synthesis(w, noise="random"), generator.synthesis(w, noise="random")
        c, d = generator.synthesis(w), generator.synthesis(w)
    assert not torch.equal(a, b)
    assert torch.equal(c, d)
    with pytest.raises(ValueError, match="noise"):
        generator.synthesis(w, noise=[None])


@pytest.mark.parametrize("batch", [2, 4, 8])
def test_discriminator_outputs(golden, models, batch):
    with torch.no_grad():
        check(golden, f"d_out_b{batch}", models.discriminator(golden["inputs"][f"d_x_b{batch}"]))


def test_discriminator_activations_and_features(golden, models):
    discriminator = models.discriminator
    captured = {}
    hooks = [
        discriminator.convs[0].register_forward_hook(lambda m, a, out: captured.__setitem__("convs_0", out[0:1])),
        discriminator.convs[2].register_forward_hook(lambda m, a, out: captured.__setitem__("convs_2", out)),
        discriminator.final_conv.register_forward_hook(
            lambda m, args, out: captured.update(final_conv_input=args[0], final_conv=out)
        ),
    ]
    x = golden["inputs"]["d_x_b4"]
    try:
        with torch.no_grad():
            discriminator(x)
            features = discriminator.features(x)
    finally:
        for hook in hooks:
            hook.remove()
    for name in ("convs_0", "convs_2", "final_conv_input", "final_conv"):
        check(golden, f"d_act_{name}", captured[name])
    # the layout the discriminator was asked for is the one its layers ran in
    layout = torch.channels_last if discriminator.channels_last is None else torch.contiguous_format
    assert captured["convs_2"].is_contiguous(memory_format=layout)
    assert len(features) == int(golden["expected"]["jojo_d_n_feats"].item())
    for i, feature in enumerate(features):
        check(golden, f"jojo_d_feat_{i}", feature)
