"""GAN inversion: FFHQ-aligned faces → w+ [B, 18, 512] with the e4e encoder, plus optional latent refinement.

Preprocessing is JoJoGAN's (RGB, PIL bilinear resize to 256, [-1, 1]). It never runs an e4e decoder,
never detects or aligns faces (faces/ does), and never builds a loss network (LPIPS comes in as a callable).
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .errors import ImageError
from .nn.e4e import Encoder4Editing
from .nn.stylegan2 import Generator

ENCODER_SIZE = 256
# modes whose `convert("RGB")` keeps the pixel values meaningful; 16-bit/float images need scaling first
RGB_CONVERTIBLE_MODES = {"RGB", "RGBA", "RGBX", "RGBa", "L", "LA", "La", "P", "PA", "CMYK", "YCbCr", "1"}
LossFunction = Callable[[Tensor, Tensor], Tensor]
Faces = Image.Image | Sequence[Image.Image] | Tensor


def pil_to_tensor(image: Image.Image, size: int) -> Tensor:
    """An image → [3, size, size] in [-1, 1]: RGB, PIL bilinear resize, ToTensor, Normalize(0.5, 0.5)."""
    if image.mode not in RGB_CONVERTIBLE_MODES:
        raise ImageError(
            f"cannot invert a face with {image.mode} pixels (16-bit or float); convert it to 8-bit RGB first."
        )
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)  # [3, size, size] uint8
    return pixels.float().div(255).sub(0.5).div(0.5)


def faces_to_tensor(faces: Faces, size: int) -> Tensor:
    """PIL image(s) of any size, or a tensor [B,3,H,W] in [-1,1] → [B, 3, size, size] in [-1, 1].

    Tensors are resized with antialiased bilinear interpolation, the torch counterpart of PIL's resize.
    """
    if isinstance(faces, Image.Image):
        faces = [faces]
    if isinstance(faces, Tensor):
        if faces.ndim != 4 or faces.shape[1] != 3:
            raise ImageError(f"a face tensor must be [B, 3, H, W] in [-1, 1], got shape {tuple(faces.shape)}.")
        if faces.shape[-2:] != (size, size):
            faces = F.interpolate(
                faces.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        return faces
    if len(faces) == 0:
        raise ImageError("no face images were given to invert.")
    return torch.stack([pil_to_tensor(face, size) for face in faces])


class Inverter:
    """Turns aligned faces into w+ = e4e codes + latent_avg, in batches, without gradients."""

    def __init__(
        self,
        encoder: Encoder4Editing,
        latent_avg: Tensor,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 4,
    ):
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = batch_size
        self.encoder = encoder.to(device=self.device, dtype=dtype).eval()
        self.latent_avg = latent_avg.to(device=self.device, dtype=torch.float32)  # [n_styles, 512]

    @torch.no_grad()
    def invert(self, faces: Faces) -> Tensor:
        """FFHQ-aligned face(s) → w_plus [B, n_styles, 512] (float32, on the inverter's device)."""
        images = faces_to_tensor(faces, ENCODER_SIZE)  # [B, 3, 256, 256]
        w_plus = []
        for batch in images.split(self.batch_size):
            codes = self.encoder(batch.to(device=self.device, dtype=self.dtype))  # [b, n_styles, 512]
            w_plus.append(codes.float() + self.latent_avg)
        return torch.cat(w_plus)

    __call__ = invert


def refine(
    w_plus: Tensor,
    target: Faces,
    generator: Generator,
    steps: int,
    loss: str | LossFunction = "l2",
    lr: float = 0.01,
    progress: Callable[[int, float], None] | None = None,
) -> Tensor:
    """A few Adam steps on w_plus so that `generator.synthesis(w_plus, noise="const")` matches `target`.

    `target` is the same aligned face(s), resized to the generator size; `loss` is "l2" (mean squared
    error) or a callable (image, target) → loss, e.g. an LPIPS module. The generator is not changed.
    """
    expected = (generator.n_latent, generator.style_dim)
    if w_plus.ndim != 3 or tuple(w_plus.shape[1:]) != expected:
        raise ValueError(
            f"w_plus must be [B, {expected[0]}, {expected[1]}] for this generator, got {tuple(w_plus.shape)}"
        )
    if loss == "l2":
        loss = F.mse_loss
    elif isinstance(loss, str):
        raise ValueError(f"loss must be 'l2' or a callable (pass an LPIPS module for LPIPS), got {loss!r}")
    parameter = next(generator.parameters())
    target = faces_to_tensor(target, generator.size).to(parameter.device, parameter.dtype)  # [B, 3, S, S]
    if target.shape[0] != w_plus.shape[0]:
        raise ValueError(f"{target.shape[0]} target faces for {w_plus.shape[0]} latents")

    w = w_plus.detach().to(parameter.device, parameter.dtype).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=lr)
    trainable = [p for p in generator.parameters() if p.requires_grad]
    generator.requires_grad_(False)  # gradients flow to w only
    try:
        with torch.enable_grad():
            for step in range(steps):
                image = generator.synthesis(w, noise="const")  # [B, 3, S, S]
                value = loss(image, target).mean()
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                if progress is not None:
                    progress(step + 1, value.item())
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return w.detach().to(w_plus.dtype)
