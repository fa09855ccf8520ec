"""Restyling: image → faces → aligned crops → e4e → style pack generator → seamless paste-back.

Used by the web UI's postprocessing, the Extras tab, the API, the CLI and the app alike.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from PIL import Image

from .allocator import large_buffers_reused
from .args import RestyleArgs
from .errors import CancelledError, JojoganError
from .faces.align import AlignedFace, align_face, paste_back
from .faces.detect import Face
from .images import to_rgb
from .previews import tensor_to_image
from .runtime import Runtime

GENERATOR_BATCH = 4
# GPU memory one restyle needs at 1024: e4e, the base and the blended generator, one batch's activations,
# with margin (an estimate, handed to the host's memory manager before the models go to the GPU)
RESTYLE_GPU_BYTES = 3 * 2**30
# a wait for the device shorter than this is not mentioned in the result's message
WAIT_WORTH_SAYING = 0.5


@dataclass
class RestyledFace:
    """One face that was restyled: where it was, and its aligned and stylized crops."""

    index: int  # position in the detector's order (0 = largest)
    face: Face
    aligned: Image.Image
    stylized: Image.Image


@dataclass
class RestyleResult:
    """The restyled image (same size and mode as the input) and what happened to each face."""

    image: Image.Image
    faces: list[RestyledFace] = field(default_factory=list)
    message: str = ""


class Restyler:
    """Restyles the faces in images with style packs, using one Runtime's models."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def find_faces(self, image: Image.Image, args: RestyleArgs) -> list[Face]:
        """Detected faces (documented order) filtered by the args' confidence, size and count."""
        return self.runtime.detector.detect(
            image, threshold=args.confidence, min_size=args.min_face_size, max_faces=args.max_faces
        )

    def restyle(
        self,
        image: Image.Image,
        args: RestyleArgs,
        faces: list[Face] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> RestyleResult:
        """Restyle the selected faces of `image` with `args.pack` (or a face's own pack in `args.face_packs`);
        no face → the image unchanged + a message. Every pack named is checked first, before any model loads."""
        if not args.pack:
            raise JojoganError("Choose a style pack to restyle faces with.")
        for name in args.packs_used():  # a misspelt pack is reported before any model loads, even with no face
            self.runtime.packs.existing(name)
        self.runtime.require_models(detector=faces is None)  # every missing model file, named at once
        result, waited = self.runtime.on_device(lambda: self._restyle(image, args, faces, should_stop))
        if waited >= WAIT_WORTH_SAYING:
            result.message += (
                f" It waited {waited:.1f} s for its turn on the device (one restyle or training at a time)."
            )
        return result

    @staticmethod
    def _check_stop(should_stop: Callable[[], bool] | None) -> None:
        if should_stop is not None and should_stop():
            raise CancelledError("Restyling was cancelled.")

    def _restyle(
        self, image: Image.Image, args: RestyleArgs, faces: list[Face] | None, should_stop: Callable[[], bool] | None
    ) -> RestyleResult:
        """The pipeline itself, run in the device's turn: faces → align → invert → synthesis → paste."""
        rgb = to_rgb(image)
        if faces is None:
            faces = self.find_faces(rgb, args)
        chosen = [(i, face) for i, face in enumerate(faces) if args.face_indices is None or i in args.face_indices]
        if not chosen:
            return RestyleResult(image, [], "No face was found to restyle; the image is unchanged.")
        if self.runtime.make_room is not None:  # the host frees memory for us first (Forge, on a GPU)
            self.runtime.make_room(RESTYLE_GPU_BYTES)
        aligned: list[AlignedFace] = [align_face(rgb, face.landmarks5, self.runtime.align_size) for _, face in chosen]
        stylized: list[Image.Image | None] = [None] * len(chosen)
        by_pack: dict[str, list[int]] = {}  # pack → positions in `chosen`: each pack's generator is built once
        for position, (index, _) in enumerate(chosen):
            by_pack.setdefault(args.pack_for(index), []).append(position)
        with large_buffers_reused(self.runtime.device):
            w_plus = []  # [n_latent, style_dim] per face, inverted in batches
            for start in range(0, len(aligned), GENERATOR_BATCH):
                self._check_stop(should_stop)
                w_plus.extend(self.runtime.invert([a.image for a in aligned[start : start + GENERATOR_BATCH]]))
            for pack, positions in by_pack.items():
                generator = self.runtime.pack_generator(pack, args.strength, args.swap_at, args.swap_into)
                for start in range(0, len(positions), GENERATOR_BATCH):
                    self._check_stop(should_stop)
                    batch = positions[start : start + GENERATOR_BATCH]
                    latents = torch.stack([w_plus[i] for i in batch]).to(self.runtime.dtype)  # [b, n_latent, style_dim]
                    with torch.inference_mode():
                        images = generator.synthesis(latents, noise="const")  # [b, 3, size, size]
                    for position, out in zip(batch, images, strict=True):
                        stylized[position] = tensor_to_image(out)
        result = paste_back(image, stylized, aligned, feather=args.feather, color_match=args.color_match)
        restyled = [
            RestyledFace(index, face, a.image, s) for (index, face), a, s in zip(chosen, aligned, stylized, strict=True)
        ]
        count = len(restyled)
        packs = ", ".join(f"'{name}'" for name in by_pack)
        return RestyleResult(result, restyled, f"Restyled {count} face{'s' if count != 1 else ''} with {packs}.")
