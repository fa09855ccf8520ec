"""One object holding the device, the folders and the lazily loaded models (each loaded once).

The fronts (web UI, API, CLI, app) create one `Runtime` and pass it around; nothing is global.
`unload()` frees the models; the next use loads them again.
"""

import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from . import weights
from .checkpoints import StyleGAN2Checkpoint, load_e4e, load_stylegan2, read_torch_checkpoint, save_e4e_cache
from .errors import CheckpointError, JojoganError
from .faces.align import align_face, center_crop_face
from .faces.detect import DEFAULT_NETWORK, NETWORKS, Face, FaceDetector
from .files import remove_stale_temp_files
from .images import ImageLimits
from .invert import Inverter
from .nn.stylegan2 import Generator
from .packs import PackLibrary, generator_fingerprint
from .train import render_preview

BASE_FILE = "stylegan2-ffhq-config-f.pt"
E4E_FILE = "e4e_ffhq_encode.pt"
VGG_FILE = "vgg16-397923af.pth"


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
    ):
        self.models_dir = Path(models_dir)
        self.cudnn_benchmark = cudnn_benchmark  # let cuDNN time its algorithms during training (CUDA only)
        self.image_limits = image_limits or ImageLimits()  # the image gate's limits, for every front
        self.device = torch.device(device)
        self.dtype = dtype
        self.allow_download = allow_download
        self.detector_network = detector_network
        self.on_download = on_download
        # called with the bytes a GPU job is about to need, so a host can unload its own models first (Forge)
        self.make_room: Callable[[int], None] | None = None
        self.folders = weights.WeightFolders(self.models_dir, webui_models_dir)
        self.packs = PackLibrary(self.models_dir / "styles")
        for folder in (self.packs.folder, self.models_dir / "base"):
            remove_stale_temp_files(folder)  # half-written files of a process that was killed
        self._base, self._inverter, self._detector, self._lpips = base, inverter, detector, lpips
        self._fingerprint: str | None = None
        self._pack_cache: tuple[tuple, Generator] | None = None
        self._lock = threading.RLock()

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
        if detector and self._detector is None and self.detector_network in NETWORKS:
            needed.append(NETWORKS[self.detector_network][1])
        if lpips and self._lpips is None:
            needed.append(VGG_FILE)
        if needed:
            self.require(*needed)

    def import_pack(self, source: str | Path, name: str, *, overwrite: bool = False, dtype: str = "float16") -> Path:
        """Add a style pack or convert a JoJoGAN style into the library (the one import gate, see PackLibrary)."""
        return self.packs.import_file(
            source,
            name,
            base=lambda: self.base,
            fingerprint=lambda: self.base_fingerprint,
            render_preview=self.render_average_face,
            overwrite=overwrite,
            dtype=dtype,
        )

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
        """RetinaFace (facexlib); weights found in our folders, the web UI's GFPGAN folder or facexlib's."""
        with self._lock:
            if self._detector is None:
                if self.detector_network not in NETWORKS:
                    raise JojoganError(f"Unknown face detector '{self.detector_network}'; use {', '.join(NETWORKS)}.")
                name = NETWORKS[self.detector_network][1]
                self._detector = FaceDetector(
                    self.require(name)[name], network=self.detector_network, device=self.device
                )
            return self._detector

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
            self._fingerprint, self._pack_cache = None, None
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

    def align_references(self, images: Sequence[Image.Image], already_aligned: bool) -> list[Image.Image]:
        """Training references as aligned square crops: detected + FFHQ-aligned, or centre-cropped."""
        aligned = []
        for number, image in enumerate(images, 1):
            if already_aligned:
                aligned.append(center_crop_face(image, self.align_size).image)
                continue
            faces = self.detect(image)
            if not faces:
                raise JojoganError(
                    f"No face was found in reference {number}; if it is already a face crop, tick "
                    "'references are aligned'."
                )
            best = max(faces, key=lambda face: face.score)
            aligned.append(align_face(image, best.landmarks5, self.align_size).image)
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

    def pack_generator(self, name: str, strength: float = 1.0) -> Generator:
        """The base generator with a pack's weights blended by `strength`, in the runtime's precision.

        The last one is kept for reuse (restyling a batch of images builds it once).
        """
        path = self.packs.existing(name)
        key = (str(path), path.stat().st_mtime_ns, round(float(strength), 4), self.dtype)
        with self._lock:
            if self._pack_cache is None or self._pack_cache[0] != key:
                self._pack_cache = None  # free the old copy before building the new one
                pack = self.packs.load(name)
                generator = pack.generator(self.base.generator, strength, base_fingerprint=self.base_fingerprint)
                self._pack_cache = (key, generator.to(self.dtype))
            return self._pack_cache[1]
