"""StyleGAN2 generator and discriminator with the state-dict keys of rosinality/stylegan2-pytorch.

Small modules that read like the paper's equations; the public FFHQ-1024 config-f weights load
strictly. Nothing here knows about files, the web UI or training.
"""

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from .ops import blur, conv_layout, fused_leaky_relu, make_kernel, upfirdn2d

BLUR_TAPS = (1, 3, 3, 1)
NoiseSpec = str | list[Tensor | None]


def channel_table(size: int, channel_multiplier: int = 2, channel_max: int = 512) -> dict[int, int]:
    """Feature maps per resolution (4..size) for config-f, each capped by `channel_max` (tiny test models)."""
    cm = channel_multiplier
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
    return {res: min(ch, channel_max) for res, ch in table.items() if res <= size}


class PixelNorm(nn.Module):
    """Normalise each latent vector to unit mean square."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with the equalized learning rate: W·lr_mul/√in, bias·lr_mul."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Conv layer with the equalized learning rate: W/√(in·k²)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by leaky ReLU(0.2)·√2."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias)


class Blur(nn.Module):
    """FIR low-pass with a stored kernel (scaled by factor² when it follows an upsampling)."""

    def __init__(self, pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(list(BLUR_TAPS)) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return blur(x, self.kernel, self.pad)


class Upsample(nn.Module):
    """2× FIR upsampling of the RGB skip branch: upfirdn2d(kernel·4, up 2, pad (2, 1))."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", make_kernel(list(BLUR_TAPS)) * 4)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=2, pad=(2, 1))


class ModulatedConv2d(nn.Module):
    """Weights scaled per sample by the style, optionally demodulated; one convolution per sample."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, demodulate: bool = True, upsample: bool = False
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        if upsample:  # registered before `modulation`: the state-dict order of the reference
            self.blur = Blur(pad=(1, 1), upsample_factor=2)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1)
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.demodulate = demodulate
        self.upsample = upsample
        self.padding = kernel_size // 2
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size

    def modulated_weight(self, style: Tensor) -> Tensor:
        """Per-sample weights [B, out, in, k, k] for styles [B, style_dim]."""
        batch = style.shape[0]
        weight = self.scale * self.weight * self.modulation(style).view(batch, 1, self.in_ch, 1, 1)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)  # [B, out]
            weight = weight * demod.view(batch, self.out_ch, 1, 1, 1)
        return weight

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        weight = self.modulated_weight(style)  # [B, out, in, k, k]
        # one convolution per sample (the reference's grouped conv, unrolled): the output is a fresh tensor
        # in the input's memory layout, never a view, so the caller may update it in place cheaply
        if x.shape[0] == 1:
            return self.convolve(x, weight[0])
        return torch.cat([self.convolve(sample, w) for sample, w in zip(x.split(1), weight, strict=True)])

    def convolve(self, x: Tensor, weight: Tensor) -> Tensor:
        """One sample [1, in, H, W] with its weights [out, in, k, k]; upsampling = transposed conv + blur."""
        if self.upsample:
            return self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        return F.conv2d(x, weight, padding=self.padding)


class NoiseInjection(nn.Module):
    """The learned strength of the per-pixel noise that StyledConv adds (key `noise.weight`)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class StyledConv(nn.Module):
    """Modulated 3×3 conv (optionally upsampling) + noise + bias + leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        out = self.conv(x, style)  # a fresh tensor that the conv's backward does not need: update it in place
        if noise is None:
            noise = out.new_empty(out.shape[0], 1, *out.shape[2:]).normal_()
        out = out.add_(self.noise.weight * noise).add_(self.activate.bias.view(1, -1, 1, 1))
        # leaky_relu(x)·√2 == leaky_relu(√2·x); the in-place leaky ReLU keeps its output for backward
        return F.leaky_relu_(out.mul_(math.sqrt(2)), 0.2)


class ToRGB(nn.Module):
    """1×1 modulated conv to RGB (no demodulation) plus the upsampled RGB of the previous block."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ConstantInput(nn.Module):
    """The learned 4×4 input of the synthesis network."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class Generator(nn.Module):
    """StyleGAN2 generator: `mapping` z → w, `synthesis` w+ [B, n_latent, style_dim] → image [B,3,size,size].

    The output is not clamped (about [−1, 1]). Keys and buffers are rosinality's.
    """

    # memory layout of the activations; None: the device's fastest (conv_layout): channels-last on CPU, where oneDNN
    # runs the inference forward ≈ 2× and a training step ≈ 1.2× faster so
    channels_last: bool | None = None

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        channel_max: int = 512,
        lr_mlp: float = 0.01,
        channels: dict[int, int] | None = None,
    ):
        super().__init__()
        self.size = size
        self.style_dim = style_dim
        self.n_mlp = n_mlp
        self.channels = channels or channel_table(size, channel_multiplier, channel_max)
        self.log_size = int(math.log2(size))
        if 2**self.log_size != size or size < 8:
            raise ValueError(f"generator size must be a power of two >= 8, got {size}")
        self.n_latent = self.log_size * 2 - 2
        self.num_noise_layers = (self.log_size - 2) * 2 + 1

        self.style = nn.Sequential(
            PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp)]
        )
        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer in range(self.num_noise_layers):
            res = 2 ** ((layer + 5) // 2)
            self.noises.register_buffer(f"noise_{layer}", torch.randn(1, 1, res, res))
        in_ch = ch[4]
        for level in range(3, self.log_size + 1):
            out_ch = ch[2**level]
            self.convs.append(StyledConv(in_ch, out_ch, style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, style_dim))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Tensor], lr_mlp: float = 0.01) -> "Generator":
        """Build a generator whose whole configuration is read from the tensors, then load strictly."""
        try:
            style_dim = state_dict["style.1.weight"].shape[1]
            n_mlp = _count_indexed(state_dict, r"style\.(\d+)\.weight")
            n_blocks = _count_indexed(state_dict, r"to_rgbs\.(\d+)\.bias")
            channels = {4: state_dict["conv1.conv.weight"].shape[1]}
            for block in range(n_blocks):
                channels[2 ** (block + 3)] = state_dict[f"convs.{2 * block}.conv.weight"].shape[1]
        except (KeyError, IndexError) as error:
            raise CheckpointError(f"this is not a StyleGAN2 generator state dict (no {error})") from None
        generator = cls(2 ** (n_blocks + 2), style_dim, n_mlp, lr_mlp=lr_mlp, channels=channels)
        load_strict(generator, state_dict, "generator")
        return generator

    def mapping(self, z: Tensor) -> Tensor:
        """z [B, style_dim] → w [B, style_dim] through PixelNorm and the MLP."""
        return self.style(z)

    def mean_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Average w over `n` random z: the truncation centre, [1, style_dim]."""
        device = self.input.input.device
        z = torch.randn(n, self.style_dim, generator=generator, device=device, dtype=self.input.input.dtype)
        return self.mapping(z).mean(0, keepdim=True)

    def noise_maps(self, noise: NoiseSpec) -> list[Tensor | None]:
        """The per-layer noise: stored buffers ("const"), fresh per call ("random"), or given tensors."""
        if noise == "const":
            return [getattr(self.noises, f"noise_{layer}") for layer in range(self.num_noise_layers)]
        if noise == "random":
            return [None] * self.num_noise_layers
        if isinstance(noise, list | tuple) and len(noise) == self.num_noise_layers:
            return list(noise)
        raise ValueError(f"noise must be 'const', 'random' or a list of {self.num_noise_layers} tensors")

    def synthesis(self, w_plus: Tensor, noise: NoiseSpec = "const") -> Tensor:
        """w+ [B, n_latent, style_dim] → image [B, 3, size, size]."""
        noises = self.noise_maps(noise)
        out = self.conv1(conv_layout(self.input(w_plus.shape[0]), self.channels_last), w_plus[:, 0], noises[0])
        skip = self.to_rgb1(out, w_plus[:, 1])
        for block, to_rgb in enumerate(self.to_rgbs):
            i = 2 * block
            out = self.convs[i](out, w_plus[:, i + 1], noises[i + 1])
            out = self.convs[i + 1](out, w_plus[:, i + 2], noises[i + 2])
            skip = to_rgb(out, w_plus[:, i + 3], skip)
        return skip

    def forward(self, w_plus: Tensor, noise: NoiseSpec = "const") -> Tensor:
        return self.synthesis(w_plus, noise)

    def synthesis_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters JoJoGAN finetunes (everything but the mapping network), by state-dict key."""
        return {name: p for name, p in self.named_parameters() if not name.startswith("style.")}


class ConvLayer(nn.Sequential):
    """Discriminator conv: [blur →] equalized conv (stride 2 when downsampling) [→ bias + leaky ReLU]."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        downsample: bool = False,
        bias: bool = True,
        activate: bool = True,
    ):
        layers: list[nn.Module] = []
        if downsample:
            p = (len(BLUR_TAPS) - 2) + (kernel_size - 1)
            layers.append(Blur(pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_ch))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3×3 convs (the second downsampling) plus a 1×1 downsampled skip, summed and scaled by 1/√2."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, activate=False, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator; `features` gives JoJoGAN's perceptual features."""

    feature_layers = (1, 3, 4, 5)
    channels_last: bool | None = None  # memory layout of the activations; None: the device's fastest (conv_layout)

    def __init__(
        self,
        size: int,
        channel_multiplier: int = 2,
        channel_max: int = 512,
        channels: dict[int, int] | None = None,
        stddev_group: int = 4,
    ):
        super().__init__()
        self.size = size
        ch = channels or channel_table(size, channel_multiplier, channel_max)
        log_size = int(math.log2(size))
        self.convs = nn.Sequential(
            ConvLayer(3, ch[size], 1), *[ResBlock(ch[2**i], ch[2 ** (i - 1)]) for i in range(log_size, 2, -1)]
        )
        self.stddev_group = stddev_group
        self.final_conv = ConvLayer(ch[4] + 1, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 4 * 4, ch[4], activate=True), EqualLinear(ch[4], 1))

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Tensor]) -> "Discriminator":
        """Build a discriminator whose configuration is read from the tensors, then load strictly."""
        try:
            n_blocks = _count_indexed(state_dict, r"convs\.(\d+)\.conv1\.0\.weight")
            size = 2 ** (n_blocks + 2)
            channels = {size: state_dict["convs.0.0.weight"].shape[0]}
            for block in range(1, n_blocks + 1):
                channels[size >> block] = state_dict[f"convs.{block}.conv2.1.weight"].shape[0]
        except (KeyError, IndexError) as error:
            raise CheckpointError(f"this is not a StyleGAN2 discriminator state dict (no {error})") from None
        discriminator = cls(size, channels=channels)
        load_strict(discriminator, state_dict, "discriminator")
        return discriminator

    def minibatch_stddev(self, x: Tensor) -> Tensor:
        """Append the std over groups of samples (strided grouping, biased variance) as one channel."""
        batch, channels, height, width = x.shape
        group = min(batch, self.stddev_group)
        stddev = x.view(group, -1, 1, channels, height, width)  # sample b is in group member b // (B/group)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8)
        stddev = stddev.mean([2, 3, 4], keepdim=True).squeeze(2)  # [B/group, 1, 1, 1]
        return torch.cat([x, stddev.repeat(group, 1, height, width)], 1)

    def forward(self, x: Tensor) -> Tensor:
        """Image [B, 3, size, size] → realness score [B, 1]."""
        out = self.final_conv(self.minibatch_stddev(self.convs(conv_layout(x, self.channels_last))))
        return self.final_linear(out.flatten(1))

    def features(self, x: Tensor) -> list[Tensor]:
        """Outputs of convs[1], [3], [4], [5] (those that exist); stops after the last one needed."""
        wanted = [i for i in self.feature_layers if i < len(self.convs)]
        features, x = [], conv_layout(x, self.channels_last)
        for i, block in enumerate(self.convs[: wanted[-1] + 1]):
            x = block(x)
            if i in wanted:
                features.append(x)
        return features


def _count_indexed(state_dict: dict[str, Tensor], pattern: str) -> int:
    """How many keys match `pattern` exactly (one per numbered sub-module)."""
    return sum(1 for key in state_dict if re.fullmatch(pattern, key))


def load_strict(module: nn.Module, state_dict: dict[str, Tensor], what: str) -> None:
    """load_state_dict(strict) with one readable CheckpointError for missing, extra or misshapen tensors."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    wrong = [
        f"{key} {tuple(state_dict[key].shape)} (expected {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state_dict and state_dict[key].shape != value.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    if wrong:
        problems.append(f"{len(wrong)} tensors of the wrong shape (e.g. {wrong[0]})")
    if problems:
        raise CheckpointError(f"the {what} weights do not fit: " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=True)
