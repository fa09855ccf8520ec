"""Compose style packs without training: swap generator layers by resolution, or mix packs and the base model.

Weight-space maths on synthesis tensors (Σᵢ wᵢ(r)·θᵢ per resolution r) plus a `Composer` that loads sources
once and caches composed generators by recipe. It never imports the web UI, nor the Runtime that holds it.
"""

import copy
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from .args import BASE_SOURCE, Recipe, SwapRecipe, dump
from .errors import JojoganError
from .nn.stylegan2 import Generator
from .packs import PackLibrary, StylePack, make_pack, safe_pack_name, tensors_fingerprint

# GPU memory one composition needs at 1024: the composed generator copy and the preview's activations (with
# a test face, e4e too), with margin; an estimate handed to the host's memory manager before work starts
COMPOSE_GPU_BYTES = 3 * 2**30
Weights = dict[str, list[float]]  # source name -> normalised weight per resolution (4, 8, …, size)


def tensor_resolution(key: str) -> int:
    """The resolution a synthesis tensor works at (DESIGN §3): input/conv1/to_rgb1 → 4, convs.k → 2^(k//2+3), to_rgbs.j → 2^(j+3)."""
    head, _, rest = key.partition(".")
    if head in ("input", "conv1", "to_rgb1"):
        return 4
    index = rest.partition(".")[0]
    if head in ("convs", "to_rgbs") and index.isdigit():
        return 2 ** (int(index) // 2 + 3) if head == "convs" else 2 ** (int(index) + 3)
    raise ValueError(f"{key} is not a synthesis tensor of a StyleGAN2 generator")


def resolutions(size: int) -> list[int]:
    """The generator's resolutions, 4 … size."""
    return [2**level for level in range(2, int(math.log2(size)) + 1)]


def high_share(resolution: int, at: int, transition: float) -> float:
    """The `high` source's weight at `resolution`: 0 up to `at` and 1 above it, or with a transition T > 0 a logistic
    over log2(resolution) centred between `at` and 2·`at` with width T (rising monotonically from 0 to 1)."""
    if transition == 0:
        return 0.0 if resolution <= at else 1.0
    return 1.0 / (1.0 + math.exp(-(math.log2(resolution) - math.log2(at) - 0.5) / transition))


def source_name(name: str) -> str:
    """A source as the recipe means it: `base`, or the pack's file name (sanitized; PackError when unusable)."""
    return BASE_SOURCE if name.strip() == BASE_SOURCE else safe_pack_name(name)


def recipe_weights(recipe: Recipe, size: int) -> Weights:
    """Each source's weight at every resolution 4 … size, normalised so that they sum to 1 at each resolution."""
    levels = resolutions(size)
    if isinstance(recipe, SwapRecipe):
        if recipe.at > size:
            raise JojoganError(
                f"The swap resolution {recipe.at} is above the generator's {size} px; choose 4 … {size}."
            )
        shares = [high_share(level, recipe.at, recipe.transition) for level in levels]
        given = [(recipe.low, [1.0 - share for share in shares]), (recipe.high, shares)]
    else:
        total = sum(recipe.weights.values())  # > 0: parse_recipe refuses all-zero weights
        given = [(name, [weight / total] * len(levels)) for name, weight in recipe.weights.items()]
    weights: Weights = {}
    for name, values in given:  # a source named twice (a pack swapped with itself) adds up
        key = source_name(name)
        weights[key] = [a + b for a, b in zip(weights.get(key, [0.0] * len(levels)), values, strict=True)]
    return weights


@torch.no_grad()
def blend_into(target: Mapping[str, Tensor], weights: Weights, sources: Mapping[str, Mapping[str, Tensor]]) -> None:
    """Write Σᵢ wᵢ(r)·θᵢ (float32 maths) into every target tensor; a lone weight of 1 copies its source bit for bit."""
    size = max(tensor_resolution(key) for key in target)
    index = {level: position for position, level in enumerate(resolutions(size))}
    for key, out in target.items():
        level = index[tensor_resolution(key)]
        terms = [(sources[name][key], share[level]) for name, share in weights.items() if share[level] > 0]
        if len(terms) == 1 and terms[0][1] == 1.0:
            out.copy_(terms[0][0])
            continue
        total = torch.zeros(out.shape, dtype=torch.float32, device=out.device)
        for tensor, share in terms:
            total.add_(tensor.to(out.device, torch.float32), alpha=share)
        out.copy_(total)


def describe(recipe: Recipe) -> str:
    """One line saying what a recipe does (the composed pack's description)."""
    if isinstance(recipe, SwapRecipe):
        seam = f", transition {recipe.transition:g}" if recipe.transition else ""
        return f"Layers up to {recipe.at} px from {recipe.low}, above from {recipe.high}{seam}."
    total = sum(recipe.weights.values()) or 1.0
    parts = ", ".join(f"{name} {weight / total:.0%}" for name, weight in recipe.weights.items())
    return f"Mix of {parts}."


def file_stamp(path: Path) -> tuple[str, int, int]:
    """A pack file's identity for the caches: path, modification time and size (a replaced file is read again)."""
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


@dataclass
class Source:
    """One loaded source of a composition: a pack's tensors as stored (or the base's parameters)."""

    name: str
    tensors: Mapping[str, Tensor]
    kind: str  # "base", or the pack's `jojogan.source` (trained, converted from …, composed)
    fingerprint: Callable[[], str]


class Composer:
    """Composes generators and style packs from recipes over a pack library and a base generator.

    Loaded packs stay cached (by file and modification time, at most `keep_sources`) so a live preview or
    an X/Y/Z grid recomposes without reading files again; the last `keep_generators` composed generators are
    cached by recipe. `compose_pack` trims both caches first: it holds only its sources plus one result.
    """

    def __init__(
        self,
        library: PackLibrary,
        base: Callable[[], Generator],
        base_fingerprint: Callable[[], str],
        *,
        keep_sources: int = 4,
        keep_generators: int = 2,
    ):
        self.library, self.base, self.base_fingerprint = library, base, base_fingerprint
        self.keep_sources, self.keep_generators = keep_sources, keep_generators
        self._packs: OrderedDict[tuple, tuple[StylePack, list[str]]] = OrderedDict()
        self._generators: OrderedDict[tuple, Generator] = OrderedDict()
        self._lock = threading.RLock()

    def clear(self) -> None:
        """Forget the cached packs and generators."""
        with self._lock:
            self._packs.clear()
            self._generators.clear()

    def pack_files(self, recipe: Recipe) -> dict[str, Path | None]:
        """The file of every pack the recipe names (None for `base`); MissingPackError for the first one absent.

        The cheap check: it needs neither the base model nor the packs' tensors.
        """
        names = [recipe.low, recipe.high] if isinstance(recipe, SwapRecipe) else list(recipe.weights)
        return {source_name(n): None if source_name(n) == BASE_SOURCE else self.library.existing(n) for n in names}

    def weights(self, recipe: Recipe) -> Weights:
        """The recipe's normalised per-resolution weights for the base generator's size."""
        return recipe_weights(recipe, self.base().size)

    def sources(self, files: Mapping[str, Path | None]) -> dict[str, Source]:
        """The sources `pack_files` found, loaded (or cached) and checked to fit the base generator."""
        base = self.base()
        sources = {}
        for name, path in files.items():
            if path is None:
                sources[name] = Source(name, base.synthesis_parameters(), BASE_SOURCE, self.base_fingerprint)
                continue
            pack, fingerprint = self._load(path)
            sources[name] = Source(name, pack.tensors, pack.metadata.get("jojogan.source", ""), fingerprint)
        return sources

    def pack(self, path: Path) -> StylePack:
        """One pack from the cache or the disk, checked to fit the base (restyling reads packs through here)."""
        return self._load(path)[0]

    def _load(self, path: Path) -> tuple[StylePack, Callable[[], str]]:
        """A pack from the cache or the disk (checked against the base), and its tensors' sha256 (computed once)."""
        key = file_stamp(path)
        with self._lock:
            if key not in self._packs:
                pack = self.library.load(path.stem).expanded(self.base(), self.base_fingerprint())  # checks the fit
                self._packs[key] = (pack, [])
                while len(self._packs) > self.keep_sources:
                    self._packs.popitem(last=False)
            self._packs.move_to_end(key)
            pack, digest = self._packs[key]

        def fingerprint() -> str:
            if not digest:
                digest.append(tensors_fingerprint(pack.tensors))
            return digest[0]

        return pack, fingerprint

    def _compose(self, recipe: Recipe) -> tuple[Generator, Weights, dict[str, Source]]:
        """A copy of the base generator (on its device) with the recipe's weights; the weights and the sources used.

        Checks go cheapest first: the packs exist, the recipe fits the base's size, the packs fit the base.
        """
        files = self.pack_files(recipe)
        weights = self.weights(recipe)
        sources = self.sources(files)
        base = self.base()
        # a copy of the base whose synthesis parameters are fresh, unfilled tensors: the blend writes every value
        fresh = {id(p): torch.nn.Parameter(torch.empty_like(p), False) for p in base.synthesis_parameters().values()}
        generator = copy.deepcopy(base, fresh)
        blend_into(generator.synthesis_parameters(), weights, {name: s.tensors for name, s in sources.items()})
        return generator.eval().requires_grad_(False), weights, sources

    def generator(self, recipe: Recipe, dtype: torch.dtype | None = None) -> Generator:
        """The base generator with the recipe's weights, cached by recipe (read-only: it is shared), in `dtype`
        when given: for live previews and X/Y/Z grids."""
        stamps = tuple(path and file_stamp(path) for path in self.pack_files(recipe).values())
        key = (json.dumps(dump(recipe), sort_keys=True), stamps, dtype)
        with self._lock:
            if key not in self._generators:
                generator = self._compose(recipe)[0]
                self._generators[key] = generator if dtype is None else generator.to(dtype)
                while len(self._generators) > self.keep_generators:
                    self._generators.popitem(last=False)
            self._generators.move_to_end(key)
            return self._generators[key]

    def compose_pack(
        self, recipe: Recipe, title: str, render_preview: Callable[[Generator], Image.Image] | None = None
    ) -> StylePack:
        """A new (unsaved) pack: the recipe's weights, `jojogan.source` "composed", the recipe and its provenance."""
        with self._lock:
            wanted = {str(path) for path in self.pack_files(recipe).values() if path is not None}
            self._generators.clear()
            for key in [key for key in self._packs if key[0] not in wanted]:
                del self._packs[key]
            generator, weights, sources = self._compose(recipe)
        provenance = {
            "recipe": dump(recipe),
            "resolutions": resolutions(generator.size),
            "sources": [
                {"name": name, "kind": sources[name].kind, "sha256": sources[name].fingerprint(), "weights": share}
                for name, share in weights.items()
            ],
        }
        metadata = {
            "modelspec.description": describe(recipe),
            "jojogan.source": "composed",
            "jojogan.recipe": json.dumps(provenance),
        }
        preview = render_preview(generator) if render_preview is not None else None
        return make_pack(
            generator,
            base=self.base(),
            title=title,
            metadata=metadata,
            preview=preview,
            base_fingerprint=self.base_fingerprint(),
        )
