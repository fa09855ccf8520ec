"""The e4e encoder (Encoder4Editing): an aligned face [B,3,256,256] in [-1,1] → StyleGAN2 codes.

State-dict keys are those of the public `e4e_ffhq_encode.pt` minus the `encoder.` prefix. This module
only computes; reading files lives in `checkpoints.py`, image preprocessing in `invert.py`.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ops import conv_layout
from .stylegan2 import EqualLinear

# IR-SE-50 body: units per stage; stage s maps width·(1, 1, 2, 4)[s] → width·(1, 2, 4, 8)[s] channels and its
# first unit halves H, W. The public model has width 64 (styles of 8·64 = 512); tests use narrow copies.
IR_SE_50_UNITS = (3, 4, 14, 3)
DEFAULT_WIDTH = 64
SE_REDUCTION = 16
STYLE_DIM = 8 * DEFAULT_WIDTH
# body unit outputs feeding the feature pyramid: c1 [B,128,64,64], c2 [B,256,32,32], c3 [B,512,16,16]
C1_UNIT, C2_UNIT, C3_UNIT = 6, 20, 23
# styles [0, 3) read c3 (16×16), [3, 7) read p2 (32×32), the rest read p1 (64×64)
COARSE_END, MIDDLE_END = 3, 7


class SqueezeExcite(nn.Module):
    """Channel attention: x · sigmoid(fc2(relu(fc1(mean_hw(x)))))."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))
        return x * gate


class BottleneckIRSE(nn.Module):
    """One IR-SE unit: BN → conv3×3 → PReLU → conv3×3 (stride) → BN → SE, plus a shortcut.

    The shortcut is a strided subsample when the channel count stays, else conv1×1 (stride) → BN.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.stride = stride
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
            nn.PReLU(out_ch),
            nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            SqueezeExcite(out_ch),
        )
        if in_ch != out_ch:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
        else:
            self.shortcut_layer = None

    def shortcut(self, x: Tensor) -> Tensor:
        if self.shortcut_layer is None:
            return x[:, :, :: self.stride, :: self.stride]  # = MaxPool2d(kernel 1, stride)
        return self.shortcut_layer(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut(x)


class GradualStyleBlock(nn.Module):
    """A feature map of side `spatial` → one 512-d style: log2(spatial) stride-2 convs to 1×1, then EqualLinear."""

    def __init__(self, spatial: int, channels: int = STYLE_DIM):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(spatial.bit_length() - 1):  # log2(spatial) halvings
            layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.01)]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(channels, channels)

    def forward(self, features: Tensor) -> Tensor:
        x = self.convs(features)  # [B, 512, 1, 1]
        return self.linear(x.flatten(1))  # [B, 512]


def upsample_add(coarse: Tensor, lateral: Tensor) -> Tensor:
    """FPN merge: bilinear (align_corners=True) upsample of `coarse` to `lateral`'s size, plus `lateral`."""
    size = lateral.shape[-2:]
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=True) + lateral


class Encoder4Editing(nn.Module):
    """e4e (Tov et al. 2021): IR-SE-50 body, a 3-level feature pyramid and one GradualStyleBlock per style.

    codes[:, 0] = w0 from c3 and codes[:, i] = w0 + Δ_i (all progressive stages on, as at inference).
    Build it on the meta device and `load_state_dict(..., assign=True)` to hold only one copy of the weights.
    """

    def __init__(self, n_styles: int = 18, width: int = DEFAULT_WIDTH):
        super().__init__()
        self.n_styles, self.width, self.style_dim = n_styles, width, 8 * width
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width)
        )
        units = []
        stage_in, stage_out = (width, width, 2 * width, 4 * width), (width, 2 * width, 4 * width, 8 * width)
        for in_ch, out_ch, n_units in zip(stage_in, stage_out, IR_SE_50_UNITS, strict=True):
            units.append(BottleneckIRSE(in_ch, out_ch, stride=2))
            units += [BottleneckIRSE(out_ch, out_ch, stride=1) for _ in range(n_units - 1)]
        self.body = nn.Sequential(*units)
        self.styles = nn.ModuleList(GradualStyleBlock(self.style_spatial(i), self.style_dim) for i in range(n_styles))
        self.latlayer1 = nn.Conv2d(4 * width, self.style_dim, 1)
        self.latlayer2 = nn.Conv2d(2 * width, self.style_dim, 1)

    @staticmethod
    def style_spatial(index: int) -> int:
        """Side of the pyramid level that style `index` reads: 16 (c3), 32 (p2) or 64 (p1)."""
        if index < COARSE_END:
            return 16
        return 32 if index < MIDDLE_END else 64

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """Body and pyramid maps for x [B,3,256,256]: c1, c2, c3 (body units 6, 20, 23), p2, p1."""
        x = self.input_layer(conv_layout(x))  # [B, 64, 256, 256], channels-last on CPU (≈ 1.3× faster there)
        taps = {}
        for index, unit in enumerate(self.body):
            x = unit(x)
            if index in (C1_UNIT, C2_UNIT, C3_UNIT):
                taps[index] = x
        c1, c2, c3 = taps[C1_UNIT], taps[C2_UNIT], taps[C3_UNIT]
        p2 = upsample_add(c3, self.latlayer1(c2))  # [B, 512, 32, 32]
        p1 = upsample_add(p2, self.latlayer2(c1))  # [B, 512, 64, 64]
        return {"c1": c1, "c2": c2, "c3": c3, "p2": p2, "p1": p1}

    def style_codes(self, features: dict[str, Tensor]) -> Tensor:
        """Pyramid maps (from `forward_features`) → raw codes [B, n_styles, 512]: w0, then w0 + Δ_i."""
        level = {16: features["c3"], 32: features["p2"], 64: features["p1"]}
        w0 = self.styles[0](features["c3"])  # [B, 512]
        codes = [w0]
        for index in range(1, self.n_styles):
            delta = self.styles[index](level[self.style_spatial(index)])  # [B, 512]
            codes.append(w0 + delta)
        return torch.stack(codes, dim=1)  # [B, n_styles, 512]

    def forward(self, x: Tensor) -> Tensor:
        """x [B,3,256,256] in [-1,1] → raw codes [B, n_styles, 512] (without latent_avg)."""
        return self.style_codes(self.forward_features(x))
