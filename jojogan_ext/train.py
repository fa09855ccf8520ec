"""JoJoGAN finetuning: style-mixed pairs, the discriminator-feature (or LPIPS) loss, progress and cancel.

The pure pieces (`mix_latents`, `feature_loss`, `style_layers`) reproduce the reference notebook's step.
"""

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .allocator import large_buffers_reused
from .args import CompactArgs, TrainArgs
from .errors import CancelledError, JojoganError
from .invert import faces_to_tensor
from .nn.stylegan2 import Generator
from .packs import StylePack, make_pack
from .previews import MIN_PREVIEW_INTERVAL_S, PREVIEW_BUDGET, PreviewSchedule, render_preview

if TYPE_CHECKING:
    from .runtime import AlignedReference, Runtime


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


ProgressCallback = Callable[[int, int, float, Image.Image | None], None]


def random_noise(generator: Generator, batch: int, rng: torch.Generator, device: torch.device) -> list[Tensor]:
    """Fresh per-layer noise maps drawn from `rng` (JoJoGAN draws new noise every step; seeded = reproducible)."""
    maps = generator.noise_maps("const")
    return [torch.randn((batch, 1, *m.shape[2:]), generator=rng).to(device) for m in maps]


def lpips_distance(lpips_model: torch.nn.Module, image: Tensor, target: Tensor) -> Tensor:
    """LPIPS between two image batches, both area-resized to 256 as in JoJoGAN."""
    if image.shape[-1] != 256:
        image = F.interpolate(image, size=(256, 256), mode="area")
    if target.shape[-1] != 256:
        target = F.interpolate(target, size=(256, 256), mode="area")
    return lpips_model(image, target).mean()


@dataclass
class TrainingRun:
    """What one finetuning needs, prepared before the loop: targets, latents and the trainable copy."""

    generator: Generator
    latents: Tensor  # [N, n_latent, style_dim]
    targets: Tensor  # [N, 3, size, size] in [-1, 1]
    preview_latent: Tensor  # [1, n_latent, style_dim]
    identity: tuple[Tensor, Tensor] | None  # (latent [1, n_latent, D], target [1, 3, size, size])
    faces: list["AlignedReference"]  # the aligned references and which face of each one trains


class Finetuner:
    """One JoJoGAN finetuning in progress: the trainable generator copy, its optimizer and loss.

    `step()` runs one iteration: random styles mixed into the fine layers of the references' w+,
    fresh noise, perceptual loss against the references, one Adam step on the synthesis weights.
    """

    def __init__(
        self, runtime: "Runtime", references: Sequence[Image.Image], args: TrainArgs, test_face: Image.Image | None
    ):
        check_training(runtime, references, args, test_face)
        self.runtime, self.args, self.references = runtime, args, len(references)
        self.started = time.monotonic()
        self.seed = args.seed if args.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        self.rng = torch.Generator().manual_seed(self.seed)
        self.run = prepare_run(runtime, references, args, test_face)
        self.generator = self.run.generator
        self.optimizer = torch.optim.Adam(
            self.generator.synthesis_parameters().values(), lr=args.learning_rate, betas=(0.0, 0.99)
        )
        self.layers = style_layers(self.generator.n_latent, args.preserve_color)
        self.loss_of = make_loss(runtime, args, self.run.targets)
        self.steps_done, self.last_loss = 0, math.nan
        device = self.run.latents.device
        self.autocast_dtype = autocast_dtype(device, runtime.dtype)
        self.scaler = grad_scaler(enabled=self.autocast_dtype == torch.float16)
        self.cudnn_benchmark = runtime.cudnn_benchmark and device.type == "cuda"

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """What the training loop runs inside: CPU buffer reuse, cuDNN autotuning on CUDA (if enabled)."""
        previous = torch.backends.cudnn.benchmark
        with large_buffers_reused(self.run.latents.device):
            torch.backends.cudnn.benchmark = previous or self.cudnn_benchmark
            try:
                yield
            finally:
                torch.backends.cudnn.benchmark = previous

    def step(self) -> float:
        """One finetuning iteration; returns its loss."""
        generator, latents = self.generator, self.run.latents
        batch, device = latents.shape[0], latents.device
        with torch.no_grad():
            random_w = generator.mapping(torch.randn(batch, generator.style_dim, generator=self.rng).to(device))
        mixed = mix_latents(latents, random_w, self.layers, self.args.strength)
        noise = random_noise(generator, batch, self.rng, device)
        # float32 weights and Adam always; on a half precision setting the forward runs under autocast
        half = self.autocast_dtype is not None
        with torch.autocast(device.type, self.autocast_dtype) if half else contextlib.nullcontext():
            loss = self.loss_of(generator.synthesis(mixed, noise))
            if self.run.identity is not None:
                latent, target = self.run.identity
                identity = lpips_distance(self.runtime.lpips, generator.synthesis(latent), target)
                loss = loss + self.args.identity_weight * identity
        loss = loss.float()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()  # float16 only: loss scaling keeps small gradients from vanishing
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.steps_done += 1
        self.last_loss = float(loss.detach())
        if not math.isfinite(self.last_loss):
            raise JojoganError(
                f"Training diverged at step {self.steps_done} (loss {self.last_loss}); lower the learning rate."
            )
        return self.last_loss

    def preview(self) -> Image.Image:
        """The current generator's rendering of the test face (or first reference)."""
        return render_preview(self.generator, self.run.preview_latent)

    def train(
        self,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        schedule: PreviewSchedule | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        """The training loop as every front runs it: `args.iterations` steps, progress and previews, cancel.

        `on_progress(step, total, loss, preview)` runs after every step; `preview` is None except when
        `schedule` (default: PreviewSchedule over the iterations) says one is due. Each step and preview
        takes its turn on the device, so restyles run in between (`on_wait` hears when the training waits).
        """
        total = self.args.iterations
        schedule = schedule or PreviewSchedule(total)
        on_device = self.runtime.on_device
        with self.session():
            for step in range(self.steps_done + 1, total + 1):
                if should_stop is not None and should_stop():
                    raise CancelledError("Training was cancelled; no style pack was saved.")
                loss, _ = on_device(self.step, on_wait)
                if on_progress is not None:
                    due = schedule.due(step)
                    preview = schedule.render(lambda: on_device(self.preview, on_wait)[0]) if due else None
                    on_progress(step, total, loss, preview)

    def pack(self) -> StylePack:
        """The finetuned synthesis weights as an (unsaved) style pack with the training facts."""
        args = self.args
        training = {
            "references": self.references,
            "iterations": self.steps_done,
            "strength": args.strength,
            "preserve_color": args.preserve_color,
            "loss": args.loss,
            "identity_weight": args.identity_weight,
            "lr": args.learning_rate,
            "seed": self.seed,
            "time": round(time.monotonic() - self.started, 1),
            "device": str(self.run.latents.device),
            "final_loss": self.last_loss,
            "reference_faces": [face.describe(number) for number, face in enumerate(self.run.faces, 1)],
        }
        return make_pack(
            self.generator,
            base=self.runtime.base.generator,
            title=args.name,
            metadata={"jojogan.training": json.dumps(training)},
            preview=self.preview(),
            base_fingerprint=self.runtime.base_fingerprint,
        )


def finetune(
    runtime: "Runtime",
    references: Sequence[Image.Image],
    args: TrainArgs,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    test_face: Image.Image | None = None,
    preview_interval: float = MIN_PREVIEW_INTERVAL_S,
    preview_budget: float = PREVIEW_BUDGET,
    on_faces: Callable[[list["AlignedReference"]], None] | None = None,
    on_wait: Callable[[], None] | None = None,
    compact: CompactArgs | None = None,
    pack_dtype: str = "float16",
) -> StylePack:
    """JoJoGAN: finetune the base generator's synthesis network on the references; returns the pack (unsaved).

    `on_progress(step, total, loss, preview)` runs after every step; `preview` is an image of the test
    face (or first reference) at the first and last step, and in between as often as `preview_budget` (share
    of the run's time spent on previews) and `preview_interval` (least seconds between two) allow, else
    None. `should_stop()` is checked before every step and cancels with CancelledError. `on_faces(references)`
    hears, once the references are aligned, which face of each one trains (the documented order, largest first);
    `on_wait()` hears that the device is busy (a restyle) and the training waits for its turn. With `compact` (a
    budget) the pack comes back compact, measured on the seeded latents and the test face (or first reference),
    or in full when no compact form within the budget is smaller (its parts in `pack_dtype`).
    """
    tuner, _ = runtime.on_device(lambda: Finetuner(runtime, references, args, test_face), on_wait)
    if on_faces is not None:
        on_faces(tuner.run.faces)
    tuner.train(on_progress, should_stop, PreviewSchedule(args.iterations, preview_budget, preview_interval), on_wait)
    pack = runtime.on_device(tuner.pack, on_wait)[0]
    if compact is None:
        return pack
    latent = tuner.run.preview_latent
    return runtime.compact(pack, compact, dtype=pack_dtype, extra_latents=latent, on_wait=on_wait)[0]


def autocast_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype | None:
    """The autocast precision for training at the runtime's precision: half on CUDA, bfloat16 on CPU, else None."""
    if dtype == torch.float32 or (device.type != "cuda" and dtype != torch.bfloat16):
        return None
    return dtype


def grad_scaler(enabled: bool) -> "torch.cuda.amp.GradScaler":
    """A loss scaler for float16 training (a pass-through when disabled); torch ≥ 2.3 moved it to torch.amp."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def check_training(
    runtime: "Runtime",
    references: Sequence[Image.Image],
    args: TrainArgs,
    test_face: Image.Image | None,
    *,
    fetch: bool = True,
) -> None:
    """Refuse, before the first expensive step (alignment, inversion), a training that could not finish.

    Its inputs first, then every model file it needs at once (see `Runtime.require_models`). With `fetch`
    (not when a caller must answer at once) the models are loaded too, so a base without a discriminator
    or an unreadable VGG16 is reported up front as well.
    """
    if not references:
        raise JojoganError("Give at least one reference portrait to train a style.")
    if args.identity_weight > 0 and test_face is None:
        raise JojoganError("The identity option needs a test face photo: add one, or set the identity weight to 0.")
    needs_lpips = args.loss == "lpips" or args.identity_weight > 0
    runtime.require_models(detector=not args.references_are_aligned, lpips=needs_lpips, fetch=fetch)
    if not fetch:
        return
    if args.loss == "discriminator" and runtime.base.discriminator is None:
        raise JojoganError("The base checkpoint has no discriminator; choose the LPIPS loss instead.")
    if needs_lpips:
        runtime.lpips  # noqa: B018 (loads LPIPS, or raises naming the VGG16 file)


def prepare_run(
    runtime: "Runtime", references: Sequence[Image.Image], args: TrainArgs, test_face: Image.Image | None
) -> TrainingRun:
    """Align and invert the references (and the test face), and make the trainable generator copy."""
    base = runtime.base.generator
    chosen = runtime.align_references(references, args.references_are_aligned, args.reference_face)
    aligned = [reference.image for reference in chosen]
    latents = runtime.invert(aligned)  # [N, n_latent, style_dim]
    targets = faces_to_tensor(aligned, base.size).to(latents.device)
    generator = copy.deepcopy(base).to(latents.device)
    generator.requires_grad_(False)
    for parameter in generator.synthesis_parameters().values():
        parameter.requires_grad_(True)
    preview_latent, identity = latents[:1], None
    if test_face is not None:
        test_aligned = [runtime.align_references([test_face], args.references_are_aligned)[0].image]
        preview_latent = runtime.invert(test_aligned)
        if args.identity_weight > 0:
            identity = (preview_latent, faces_to_tensor(test_aligned, base.size).to(latents.device))
    return TrainingRun(generator, latents, targets, preview_latent, identity, chosen)


def make_loss(runtime: "Runtime", args: TrainArgs, targets: Tensor) -> Callable[[Tensor], Tensor]:
    """The perceptual loss against the targets: discriminator features (computed once) or LPIPS."""
    if args.loss == "lpips":
        lpips_model = runtime.lpips
        return lambda image: lpips_distance(lpips_model, image, targets)
    discriminator = runtime.base.discriminator.to(targets.device).eval().requires_grad_(False)
    with torch.no_grad():
        real_features = discriminator.features(targets)
    return lambda image: feature_loss(discriminator.features(image), real_features)
