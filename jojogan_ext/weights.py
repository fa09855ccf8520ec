"""Where model files come from: the catalog (URL, size, sha256), finding them on disk, downloading them,
and the one-time conversion of `.pt` originals into `.safetensors` caches beside them.

It must not import the web UI, hand-write an HTTP client (downloads go through
`torch.hub.download_url_to_file`), or touch the network unless the caller allows downloads.
"""

import glob
import http.client
import importlib.util
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.error import HTTPError, URLError

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.hub import download_url_to_file

from .errors import CheckpointError, MissingWeightsError

FolderKind = Literal["base", "styles", "detection", "lpips"]
FOLDER_KINDS: tuple[str, ...] = ("base", "styles", "detection", "lpips")

# on_progress(done_bytes, total_bytes or None while unknown); the last call has done == total
ProgressCallback = Callable[[int, int | None], None]

HEX_DIGITS = frozenset("0123456789abcdef")
PROGRESS_POLL_S = 0.1
# temporaries untouched for this long belong to a download or conversion that died
STALE_TEMPORARY_AGE_S = 600.0

# metadata keys a cached conversion records about its source (all safetensors metadata is strings)
CACHE_SOURCE_NAME = "jojogan.cache.source_name"
CACHE_SOURCE_SIZE = "jojogan.cache.source_size"
CACHE_SOURCE_MTIME = "jojogan.cache.source_mtime_ns"


@dataclass(frozen=True)
class WeightFile:
    """One downloadable file: its name on disk, where to get it, how to check it, and which folder it lives in."""

    name: str  # file name on disk, no folders
    url: str
    size: int | None  # bytes; None when unknown
    sha256: str | None  # 64 lowercase hex digits; None when unknown
    kind: FolderKind  # which folders it is looked for in (see WeightFolders)
    description: str
    license: str
    mirrors: tuple[str, ...] = ()  # tried in order when `url` fails

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "\\" in self.name or self.name in (".", ".."):
            raise ValueError(f"WeightFile name must be a bare file name, got {self.name!r}.")
        if self.kind not in FOLDER_KINDS:
            raise ValueError(f"WeightFile kind must be one of {FOLDER_KINDS}, got {self.kind!r}.")
        if self.size is not None and (type(self.size) is not int or self.size <= 0):
            raise ValueError(f"WeightFile size must be a positive int or None, got {self.size!r}.")
        if self.sha256 is not None and (len(self.sha256) != 64 or not set(self.sha256) <= HEX_DIGITS):
            raise ValueError(f"WeightFile sha256 must be 64 lowercase hex digits or None, got {self.sha256!r}.")

    @property
    def urls(self) -> tuple[str, ...]:
        """The main URL, then the mirrors."""
        return (self.url, *self.mirrors)


def _hugging_face(repo: str, path: str) -> str:
    return f"https://huggingface.co/{repo}/resolve/main/{path}"


FACEXLIB_RELEASES = "https://github.com/xinntao/facexlib/releases/download"
STYLEGAN2_LICENSE = "NVIDIA Source Code License-NC (non-commercial use only)"
JOJOGAN_STYLE_LICENSE = "MIT (JoJoGAN); finetuned from StyleGAN2-FFHQ, so NVIDIA non-commercial terms apply"
JOJOGAN_STYLE_SIZE = 132_769_079  # every style whose LFS pointer we could read has this size
JOJOGAN_STYLE_NOTE = "JoJoGAN pretrained style ({'g': generator}), imported into a style pack"


def _jojogan_style(repo: str, name: str, what: str, sha256: str | None = None) -> WeightFile:
    """A published JoJoGAN style on Hugging Face; the ones whose hash we could confirm have the common size."""
    return WeightFile(
        name=name,
        url=_hugging_face(repo, name),
        size=JOJOGAN_STYLE_SIZE if sha256 else None,
        sha256=sha256,
        kind="styles",
        description=f"{JOJOGAN_STYLE_NOTE}: {what}",
        license=JOJOGAN_STYLE_LICENSE,
    )


_CATALOG_ENTRIES = (
    WeightFile(
        name="stylegan2-ffhq-config-f.pt",
        url=_hugging_face("akhaliq/OneshotCLIP-stylegan2-ffhq", "stylegan2-ffhq-config-f.pt"),
        size=381_462_551,
        sha256="bae494ef77e32a9cd1792a81a3c167692a0e64f6bcd8b06592ff42917e2ed46e",
        kind="base",
        description="StyleGAN2 FFHQ 1024 config-f, rosinality format (g, g_ema, d, latent_avg): base generator",
        license=STYLEGAN2_LICENSE,
    ),
    WeightFile(
        name="e4e_ffhq_encode.pt",
        url=_hugging_face("wmpscc/StyleGene", "e4e_ffhq_encode.pt"),
        size=1_201_649_680,
        sha256="2ace1d9a8c05c10a399bcd500b8dda118f759ff1aac89dbdab7435f2136a0999",
        kind="base",
        description="encoder4editing FFHQ encoder (face -> w+); the bundled decoder is not used",
        license="MIT (encoder4editing); holds StyleGAN2-FFHQ decoder weights (NVIDIA non-commercial)",
        mirrors=(_hugging_face("AIRI-Institute/HairFastGAN", "pretrained_models/encoder4editing/e4e_ffhq_encode.pt"),),
    ),
    WeightFile(
        name="detection_Resnet50_Final.pth",
        url=f"{FACEXLIB_RELEASES}/v0.1.0/detection_Resnet50_Final.pth",
        size=109_497_761,
        sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
        kind="detection",
        description="RetinaFace ResNet-50 face detector (facexlib 'retinaface_resnet50')",
        license="MIT (facexlib, Pytorch_Retinaface)",
    ),
    WeightFile(
        name="detection_mobilenet0.25_Final.pth",
        url=f"{FACEXLIB_RELEASES}/v0.1.0/detection_mobilenet0.25_Final.pth",
        size=1_789_735,
        # facexlib v0.1.0 release asset; the same digest in Arch's python-facexlib sha256sums and as its
        # Hugging Face LFS object id
        sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
        kind="detection",
        description="RetinaFace MobileNet-0.25 face detector (facexlib 'retinaface_mobile0.25'), small and fast",
        license="MIT (facexlib, Pytorch_Retinaface)",
    ),
    WeightFile(
        name="parsing_parsenet.pth",
        url=f"{FACEXLIB_RELEASES}/v0.2.2/parsing_parsenet.pth",
        size=85_331_193,
        sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
        kind="detection",
        description="ParseNet face parsing (facexlib 'parsenet'), for face masks",
        license="MIT (facexlib)",
    ),
    WeightFile(
        name="vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        size=553_433_881,
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        kind="lpips",
        description="torchvision VGG16 ImageNet backbone that lpips.LPIPS(net='vgg') loads (LPIPS loss)",
        license="BSD-3-Clause (torchvision model zoo)",
    ),
    _jojogan_style("akhaliq/JoJoGAN-jojo", "jojo_preserve_color.pt", "JoJo, colours kept",
                   "405cead5eb4693c81ebadb572a7bc95a723456b3661fe49befcdc7d8a549cf04"),
    _jojogan_style("akhaliq/JoJoGAN-jojo", "jojo_yasuho_preserve_color.pt", "JoJo (Yasuho), colours kept",
                   "69ba55624c87fbadc354f9124127b1b726d754dea4b40c64f31a6c24fe76bf32"),
    _jojogan_style("akhaliq/jojogan-disney", "disney_preserve_color.pt", "Disney, colours kept",
                   "dd68c657acac52a01c2c0a7abd127614c764f036b7a8493b4feacfd05bcb14e4"),
    _jojogan_style("akhaliq/jojo-gan-art", "art.pt", "art (painting)",
                   "653a1d290f23c5d2c42532d09fa83d9c07500abd9ce469e7f560263a7d9c8641"),
    _jojogan_style("akhaliq/jojogan-arcane", "arcane_caitlyn_preserve_color.pt", "Arcane (Caitlyn), colours kept"),
    _jojogan_style("akhaliq/jojogan-arcane", "arcane_multi_preserve_color.pt",
                   "Arcane (several references), colours kept"),
    _jojogan_style("akhaliq/jojo-gan-jinx", "arcane_jinx_preserve_color.pt", "Arcane (Jinx), colours kept"),
    _jojogan_style("akhaliq/jojo-gan-spiderverse", "Spiderverse-face-500iters-8face.pt",
                   "Spider-Verse (8 references, 500 iterations)"),
)  # fmt: skip

# read-only: file name -> entry
CATALOG: Mapping[str, WeightFile] = MappingProxyType({entry.name: entry for entry in _CATALOG_ENTRIES})


def human_size(num_bytes: int | None) -> str:
    """A byte count the way people read it (decimal units, one decimal): 381462551 -> '381.5 MB'."""
    if num_bytes is None:
        return "size unknown"
    if num_bytes < 1000:
        return f"{num_bytes} B"
    value = num_bytes / 1000.0
    for unit in ("kB", "MB", "GB"):
        if value < 999.95:  # would round up to 1000.0
            return f"{value:.1f} {unit}"
        value /= 1000.0
    return f"{value:.1f} TB"


def _facexlib_weights_dir() -> Path | None:
    """Where facexlib saves its own downloads (`<site-packages>/facexlib/weights`), without importing it."""
    spec = importlib.util.find_spec("facexlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights"


@dataclass(frozen=True)
class WeightFolders:
    """The folders each kind of file is looked for in (first hit wins) and where downloads of it go.

    Search order per kind:
      base:      <models_dir>/base
      styles:    <models_dir>/styles
      detection: <models_dir>/base, <webui_models_dir>/GFPGAN (where A1111 keeps facexlib weights),
                 facexlib's own `facexlib/weights` folder
      lpips:     torch hub's `checkpoints` folder only: torchvision (inside lpips.LPIPS) loads VGG16
                 from there and nowhere else
    Downloads go to the first folder of that list (our own folders, or torch hub's for lpips).
    """

    models_dir: Path  # the extension's `models` folder
    webui_models_dir: Path | None = None  # the web UI's `models` folder, when running inside it
    torch_checkpoints_dir: Path | None = None  # None: `<torch.hub.get_dir()>/checkpoints`, read when asked
    facexlib_weights_dir: Path | None = None  # None: the installed facexlib package's `weights` folder

    def __post_init__(self) -> None:
        for name in ("models_dir", "webui_models_dir", "torch_checkpoints_dir", "facexlib_weights_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))

    def search_dirs(self, kind: FolderKind) -> list[Path]:
        """The folders to look in for a file of this kind, in order; duplicates removed."""
        base = self.models_dir / "base"
        if kind == "base":
            folders = [base]
        elif kind == "styles":
            folders = [self.models_dir / "styles"]
        elif kind == "detection":
            webui = self.webui_models_dir / "GFPGAN" if self.webui_models_dir is not None else None
            facexlib = self.facexlib_weights_dir or _facexlib_weights_dir()
            folders = [folder for folder in (base, webui, facexlib) if folder is not None]
        elif kind == "lpips":
            folders = [self.torch_checkpoints_dir or Path(torch.hub.get_dir()) / "checkpoints"]
        else:
            raise ValueError(f"Unknown folder kind {kind!r}; expected one of {FOLDER_KINDS}.")
        unique: list[Path] = []
        for folder in folders:
            if folder not in unique:
                unique.append(folder)
        return unique

    def download_dir(self, kind: FolderKind) -> Path:
        """Where a file of this kind is downloaded to (and where the offline message tells users to put it)."""
        return self.search_dirs(kind)[0]


def locate(name: str, dirs: Iterable[Path]) -> Path | None:
    """The first `<dir>/<name>` that is a file, in the order given; None when no folder has it."""
    for folder in dirs:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def _entry(item: WeightFile | str, catalog: Mapping[str, WeightFile]) -> WeightFile:
    if isinstance(item, WeightFile):
        return item
    try:
        return catalog[item]
    except KeyError:
        raise KeyError(f"{item!r} is not in the weights catalog; known files: {', '.join(sorted(catalog))}.") from None


def _remove_stale_files(folder: Path, patterns: Iterable[str]) -> None:
    """Delete files matching the glob patterns that nobody has written to for STALE_TEMPORARY_AGE_S."""
    cutoff = time.time() - STALE_TEMPORARY_AGE_S
    for pattern in patterns:
        for path in folder.glob(pattern):
            with suppress(OSError):  # vanished meanwhile, or still open elsewhere (Windows)
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()


class _PartialFileWatcher:
    """Reports the size of the `.partial` file torch.hub grows next to `target`, from a helper thread."""

    def __init__(self, target: Path, total: int | None, on_progress: ProgressCallback) -> None:
        self._folder = target.parent
        self._pattern = f"{glob.escape(target.name)}.*.partial"
        self._total = total
        self._on_progress = on_progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress {target.name}", daemon=True)
        self.reported = 0  # the last size passed to on_progress

    def __enter__(self) -> "_PartialFileWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(PROGRESS_POLL_S):
            done = self._current_size()
            if done > self.reported:
                self.reported = done
                self._on_progress(done, self._total)

    def _current_size(self) -> int:
        sizes = []
        for path in self._folder.glob(self._pattern):
            with suppress(FileNotFoundError):  # renamed into place between glob and stat
                sizes.append(path.stat().st_size)
        return max(sizes, default=0)


class _DownloadFailed(Exception):
    """Internal: every source of one file failed; `reasons` holds one line per URL."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def _network_reason(error: BaseException) -> str:
    if isinstance(error, HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, URLError):
        return f"cannot reach the server ({error.reason})"
    if isinstance(error, http.client.HTTPException):
        return f"the connection broke ({type(error).__name__})"
    if isinstance(error, OSError):
        return error.strerror or str(error) or type(error).__name__
    return str(error) or type(error).__name__


def _download_from(
    entry: WeightFile, url: str, dst_dir: Path, on_progress: ProgressCallback | None, progress: bool
) -> Path:
    """One attempt from one URL; raises _DownloadFailed with the reason. A good file ends up at dst_dir/name."""
    dst = dst_dir / entry.name
    # torch.hub writes `<staging>.<hex>.partial`, checks the hash and renames it to `staging`; we check the
    # size and only then replace `dst`, so a bad download never clobbers a good file already there
    staging = dst_dir / f"{entry.name}.{uuid.uuid4().hex[:8]}.incoming"
    watcher = _PartialFileWatcher(staging, entry.size, on_progress) if on_progress is not None else None
    try:
        try:
            with watcher or nullcontext():
                # passing the full sha256 as hash_prefix makes torch.hub check all of it
                download_url_to_file(url, str(staging), hash_prefix=entry.sha256, progress=progress)
        except (OSError, http.client.HTTPException) as error:  # URLError and HTTPError are OSErrors
            raise _DownloadFailed([f"{url}: {_network_reason(error)}"]) from error
        except RuntimeError as error:  # torch.hub's hash check (the only RuntimeError it raises)
            raise _DownloadFailed(
                [f"{url}: the download was corrupt (sha256 mismatch) or the file changed upstream"]
            ) from error
        size = staging.stat().st_size
        if entry.size is not None and size != entry.size:
            raise _DownloadFailed(
                [f"{url}: got {size} bytes, expected {entry.size} (incomplete download or the file changed upstream)"]
            )
        os.replace(staging, dst)
    finally:
        with suppress(FileNotFoundError):
            staging.unlink()
    if watcher is not None and (watcher.reported != size or entry.size is None):
        on_progress(size, entry.size if entry.size is not None else size)  # the last call: done == total
    return dst


def _download_any(entry: WeightFile, dst_dir: Path, on_progress: ProgressCallback | None, progress: bool) -> Path:
    """Try every URL of the entry in order; raise _DownloadFailed listing why each failed."""
    try:
        dst_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _DownloadFailed([f"cannot create the folder {dst_dir} ({error.strerror or error})"]) from error
    name = glob.escape(entry.name)
    _remove_stale_files(dst_dir, (f"{name}.*.partial", f"{name}.*.incoming"))
    reasons = []
    for url in entry.urls:
        try:
            return _download_from(entry, url, dst_dir, on_progress, progress)
        except _DownloadFailed as failure:
            reasons.extend(failure.reasons)
    raise _DownloadFailed(reasons)


def download(
    entry: WeightFile | str,
    dst_dir: Path,
    *,
    on_progress: ProgressCallback | None = None,
    progress: bool = True,
    catalog: Mapping[str, WeightFile] = CATALOG,
) -> Path:
    """Download one file into dst_dir (atomically replacing any file there) and return its path.

    The sha256 (when known) and the size (when known) are checked before the file is put in place; a
    failed or corrupt download leaves no file behind and raises MissingWeightsError naming the file, its
    URL and the folder to put it in by hand. `progress` shows torch.hub's tqdm bar on stderr;
    `on_progress(done_bytes, total_bytes)` is called from a helper thread while bytes arrive, and once
    more at the end with done == total; it must be quick and must not raise.
    """
    entry = _entry(entry, catalog)
    dst_dir = Path(dst_dir)
    try:
        return _download_any(entry, dst_dir, on_progress, progress)
    except _DownloadFailed as failure:
        raise MissingWeightsError(
            f"Could not download {entry.name} ({human_size(entry.size)}): {failure}; download it from "
            f"{entry.url} yourself and put it in {dst_dir}."
        ) from None


def _missing_message(missing: list[tuple[WeightFile, str | None]], folders: WeightFolders, tried: bool) -> str:
    count = len(missing)
    files = "model file is" if count == 1 else "model files are"
    why = "could not be downloaded" if tried else "automatic download is off"
    lines = [f"{count} {files} missing and {why}; download each one and put it in the folder shown:"]
    for entry, reason in missing:
        line = f"  - {entry.name} ({human_size(entry.size)}) -> {folders.download_dir(entry.kind)}  from {entry.url}"
        if reason:
            line += f"  [download failed: {reason}]"
        lines.append(line)
    return "\n".join(lines)


def require(
    wanted: Iterable[WeightFile | str],
    folders: WeightFolders,
    *,
    allow_download: bool,
    on_progress: Callable[[str, int, int | None], None] | None = None,
    progress: bool = True,
    catalog: Mapping[str, WeightFile] = CATALOG,
) -> dict[str, Path]:
    """The path of every wanted file (by name or entry), downloading the missing ones when allowed.

    Anything still missing raises ONE MissingWeightsError listing each missing file with its size, the
    folder to put it in and its URL. `on_progress(name, done_bytes, total_bytes)` reports downloads.
    """
    found: dict[str, Path] = {}
    missing: list[tuple[WeightFile, str | None]] = []
    for item in wanted:
        entry = _entry(item, catalog)
        path = locate(entry.name, folders.search_dirs(entry.kind))
        if path is not None:
            found[entry.name] = path
        elif not allow_download:
            missing.append((entry, None))
        else:
            callback = partial(on_progress, entry.name) if on_progress is not None else None
            try:
                found[entry.name] = _download_any(entry, folders.download_dir(entry.kind), callback, progress)
            except _DownloadFailed as failure:
                missing.append((entry, str(failure)))
    if missing:
        raise MissingWeightsError(_missing_message(missing, folders, tried=allow_download))
    return found


def _cache_metadata(src: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    """What a cache of `src` must record: the caller's metadata plus the source's name, size and mtime."""
    metadata = dict(extra or {})
    reserved = {CACHE_SOURCE_NAME, CACHE_SOURCE_SIZE, CACHE_SOURCE_MTIME} & metadata.keys()
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved for the cache itself.")
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()):
        raise ValueError("safetensors metadata keys and values must all be strings.")
    stat = src.stat()
    metadata[CACHE_SOURCE_NAME] = src.name
    metadata[CACHE_SOURCE_SIZE] = str(stat.st_size)
    metadata[CACHE_SOURCE_MTIME] = str(stat.st_mtime_ns)
    return metadata


def _is_fresh(cache: Path, src: Path, wanted: Mapping[str, str]) -> bool:
    """True when `cache` is at least as new as `src` and records exactly the wanted metadata values."""
    try:
        if cache.stat().st_mtime_ns < src.stat().st_mtime_ns:
            return False
        with safe_open(str(cache), framework="pt") as file:
            stored = file.metadata() or {}
    except (OSError, SafetensorError):  # missing, unreadable or not a safetensors file: rebuild it
        return False
    return all(stored.get(key) == value for key, value in wanted.items())


def cached_conversion(
    src: Path,
    convert: Callable[[Path], dict[str, torch.Tensor]],
    *,
    metadata: Mapping[str, str] | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """`<stem>.safetensors` holding `convert(src)`, built once and reused while the source is unchanged.

    The cache sits beside the source, or in `cache_dir` when the source folder is not writable. It is
    rebuilt when the source's size or mtime (recorded in its metadata) or the caller's `metadata` values
    differ, or when it is older than the source. Written atomically: a failing `convert` leaves nothing.
    """
    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"{src} does not exist or is not a file.")
    if src.suffix == ".safetensors":
        raise ValueError(f"{src.name} is already a safetensors file; there is nothing to convert.")
    wanted = _cache_metadata(src, metadata)
    folders = [src.parent] if cache_dir is None else [src.parent, Path(cache_dir)]
    cache_name = f"{src.stem}.safetensors"
    for folder in folders:
        if _is_fresh(folder / cache_name, src, wanted):
            return folder / cache_name

    if cache_dir is not None:
        with suppress(OSError):  # an unusable cache_dir is reported below like a read-only one
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
    folder = next((folder for folder in folders if os.access(folder, os.W_OK)), None)
    if folder is None:
        raise CheckpointError(
            f"Cannot write the converted copy of {src.name}: no writable folder among "
            f"{', '.join(map(str, folders))}; make one writable or give a writable cache folder."
        )
    target = folder / cache_name
    _remove_stale_files(folder, (f".{glob.escape(cache_name)}.*.tmp",))
    tensors = convert(src)  # before any file is created, so a failing conversion leaves nothing behind
    temporary = folder / f".{cache_name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        save_file(tensors, str(temporary), metadata=wanted)
        os.replace(temporary, target)
    except OSError as error:
        raise CheckpointError(
            f"Could not write {target} ({error.strerror or error}); free some disk space or give another cache folder."
        ) from error
    finally:
        with suppress(FileNotFoundError):
            temporary.unlink()
    return target
