"""JoJoGAN finetuning: style-mixed pairs, the discriminator-feature (or LPIPS) loss, progress and cancel.

The pure pieces (`mix_latents`, `feature_loss`, `style_layers`) reproduce the reference notebook's step.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def style_layers(n_latent: int, preserve_color: bool) -> list[int]:
    """The w+ rows that get mixed with random styles: 7.. (all fine layers) or the colour-keeping subset."""
    if preserve_color:
        # JoJoGAN's preserve-colour list for 1024 (n_latent 18); for smaller models keep the rows that exist
        return [layer for layer in (9, 11, 15, 16, 17) if layer < n_latent]
    return list(range(7, n_latent))


def mix_latents(latents: Tensor, random_w: Tensor, layers: list[int], strength: float) -> Tensor:
    """w+ [B, n_latent, D] with rows `layers` moved `strength` of the way to random_w ([B, D] or [B, n_latent, D])."""
    if random_w.ndim == 2:
        random_w = random_w[:, None].expand_as(latents)
    mixed = latents.clone()
    mixed[:, layers] = (1 - strength) * latents[:, layers] + strength * random_w[:, layers]
    return mixed


def feature_loss(fake_features: list[Tensor], real_features: list[Tensor]) -> Tensor:
    """Mean over the discriminator features of the L1 distance between fake and real activations."""
    losses = [F.l1_loss(fake, real) for fake, real in zip(fake_features, real_features, strict=True)]
    return torch.stack(losses).sum() / len(losses)
