"""Try styles on a face: one test face rendered by each pack, or by a composition, cached so browsing is instant.

Core: plain Python + torch, never gradio or the web UI. Renders use the Runtime's models, on its device.
"""

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch import Tensor

from .args import Recipe, dump
from .checkpoints import check_safetensors_header
from .compose import file_stamp
from .errors import JojoganError
from .faces.align import align_face
from .images import to_rgb
from .nn.stylegan2 import Generator
from .previews import render_preview
from .runtime import Runtime

# rendered images kept (each at most IMAGE_SIDE px square: 0.8 MB) and test-face latents kept
KEEP_IMAGES = 32
IMAGE_SIDE = 512
KEEP_LATENTS = 4
KEEP_IDENTITIES = 256
READ_CHUNK = 2**20


def tensor_identity(path: Path) -> str:
    """sha256 of a pack file's tensors as stored (the header's tensor entries and the data bytes, not the metadata):
    the same after a rename or a details edit, different after an overwrite."""
    header = check_safetensors_header(path)
    entries = {name: entry for name, entry in header.items() if name != "__metadata__"}
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode())
    with path.open("rb") as file:
        file.seek(8 + int.from_bytes(file.read(8), "little"))
        while chunk := file.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def image_identity(image: Image.Image) -> str:
    """sha256 of an image's mode, size and pixels."""
    digest = hashlib.sha256(f"{image.mode}|{image.size}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class TestFace:
    """The face packs are tried on: an aligned crop, its identity, and where it came from."""

    image: Image.Image  # RGB, the runtime's align_size square
    identity: str
    origin: str  # "upload" or "restyle"

    @property
    def described(self) -> str:
        """Where the face came from, in words."""
        return "the face you uploaded" if self.origin == "upload" else "the first face of your last restyle"


class TryOn:
    """One test face, rendered by any pack or composition; each rendering is cached by what it depends on.

    A pack's rendering is keyed by its tensors' identity (a rename or a details edit keeps it, an overwrite renders
    anew) and the test face's identity; a composition's by its recipe and its sources' identities. At most
    `keep_images` renderings (downscaled to `image_side`) and a few test-face latents stay in memory. `renders`
    counts the renderings actually made.
    """

    def __init__(self, runtime: Runtime, *, keep_images: int = KEEP_IMAGES, image_side: int = IMAGE_SIDE):
        self.runtime, self.keep_images, self.image_side = runtime, keep_images, image_side
        self.renders = 0
        self._uploaded: TestFace | None = None
        self._restyled: TestFace | None = None
        self._images: OrderedDict[tuple, Image.Image] = OrderedDict()
        self._latents: OrderedDict[str, Tensor] = OrderedDict()
        self._identities: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def face(self) -> TestFace | None:
        """The test face: the uploaded one, else the first face of the last restyle, else None."""
        return self._uploaded or self._restyled

    def remember_restyled(self, aligned: Image.Image) -> None:
        """The first face of a restyle (its aligned crop) becomes the test face unless one was uploaded."""
        rgb = aligned.convert("RGB")
        self._restyled = TestFace(rgb, image_identity(rgb), "restyle")

    def upload(self, photo: Image.Image | None) -> TestFace | None:
        """Use the largest face of `photo` as the test face (None: back to the last restyle's face)."""
        if photo is None:
            self._uploaded = None
            return self.face
        self.runtime.require_models()  # the detector and e4e: every missing file named at once
        rgb = to_rgb(photo)

        def aligned() -> Image.Image:
            faces = self.runtime.detect(rgb)
            if not faces:
                raise JojoganError("No face was found in the uploaded test face; upload a photo with a clear face.")
            return align_face(rgb, faces[0].landmarks5, self.runtime.align_size).image

        crop = self.runtime.on_device(aligned)[0]
        self._uploaded = TestFace(crop, image_identity(crop), "upload")
        return self._uploaded

    def pack(self, name: str) -> Image.Image | None:
        """Pack `name` rendered on the test face (None without a test face); cached by tensors and face."""
        face = self.face
        if face is None:
            return None
        path = self.runtime.packs.existing(name)
        stamp = file_stamp(path)
        key = ("pack", self.identity(path), face.identity)

        def generator() -> Generator:
            styled = self.runtime.pack_generator(name)  # the generators restyling keeps: one pack read for both
            if file_stamp(path) != stamp:  # replaced meanwhile: its rendering would be kept under the old tensors
                raise JojoganError(f"The style pack '{name}' changed while it was being shown; select it again.")
            return styled

        return self._cached(key, generator, face)

    def recipe(self, recipe: Recipe) -> Image.Image:
        """A composition rendered on the test face, or on the base model's average face when there is none."""
        face = self.face
        files = self.runtime.composer.pack_files(recipe)  # an unknown source is named before any work
        sources = tuple(sorted((name, self.identity(path) if path else "base") for name, path in files.items()))
        key = ("recipe", json.dumps(dump(recipe), sort_keys=True), sources, face.identity if face else "average")
        return self._cached(key, lambda: self.runtime.composer.generator(recipe), face)

    def identity(self, path: Path) -> str:
        """A pack file's tensor identity, computed once per file version (path, modification time, size)."""
        stamp = file_stamp(path)
        with self._lock:
            if stamp in self._identities:
                self._identities.move_to_end(stamp)
                return self._identities[stamp]
        identity = tensor_identity(path)
        with self._lock:
            self._identities[stamp] = identity
            while len(self._identities) > KEEP_IDENTITIES:
                self._identities.popitem(last=False)
        return identity

    def latent(self, face: TestFace | None) -> Tensor:
        """The w+ [1, n_latent, style_dim] of a test face (inverted once), or the base model's average face."""
        base = self.runtime.base
        if face is None:
            return base.latent_avg.to(self.runtime.device).expand(1, base.generator.n_latent, -1)
        with self._lock:
            if face.identity in self._latents:
                self._latents.move_to_end(face.identity)
                return self._latents[face.identity]
        self.runtime.require_models(detector=False)
        latent = self.runtime.on_device(lambda: self.runtime.invert([face.image]))[0]
        with self._lock:
            self._latents[face.identity] = latent
            while len(self._latents) > KEEP_LATENTS:
                self._latents.popitem(last=False)
        return latent

    def _cached(self, key: tuple, generator: Callable[[], Generator], face: TestFace | None) -> Image.Image:
        """The rendering stored under `key`, or a new one: `generator()` on the face's latent, downscaled."""
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
                return self._images[key]
        latent = self.latent(face)

        def render() -> Image.Image:
            styled = generator()
            dtype = next(iter(styled.synthesis_parameters().values())).dtype
            return render_preview(styled, latent.to(self.runtime.device, dtype))

        image = self.runtime.on_device(render)[0]
        image.thumbnail((self.image_side, self.image_side))
        with self._lock:
            self.renders += 1
            self._images[key] = image
            while len(self._images) > self.keep_images:
                self._images.popitem(last=False)
        return image
