"""Compact style packs: store each synthesis tensor's difference from the base as cheaply as an image budget allows.

Per tensor the candidates are: unchanged, low-rank (truncated SVD, int8 factors), int8 with per-row scales, dense.
One price for squared relative weight error picks every tensor's candidate (least bytes + (error / tolerance)²);
fixed latents rendered with the full and the compact weights say whether the budget (PSNR, pixels off) holds, and
`Search` moves the price, then loosens groups of tensors, until the cheapest plan that holds is found. Plain
tensors and generators: no files, no web UI.
"""

import copy
import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from . import delta
from .args import CompactArgs, dump
from .nn.stylegan2 import Generator
from .packs import COMPACT_FORMAT_VERSION, DTYPES, StylePack
from .weights import human_size

# tensors below this many values are stored dense when they changed (biases, noise weights, ToRGB convs)
SMALL_TENSOR_VALUES = 1024
RANKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384)
# the tolerance search (the relative error that costs one byte, see TensorOptions.choose): start, step (×/÷ until
# the budget's edge is bracketed), end, rounds of measurement
START_TOLERANCE = 2.0**-20
TOLERANCE_STEP = 4.0
MIN_TOLERANCE = 2.0**-44
MAX_ROUNDS = 12
TRUNCATION = 0.7  # the measured latents: ψ-truncated towards the average w, where inverted faces live
RENDER_BATCH = 2  # latents rendered at once (a 1024 render's activations are ~1 GB per latent in float32)
PSNR_CAP = 100.0  # identical renders: recorded as 100 dB (JSON has no infinity)


@dataclass(frozen=True)
class Quality:
    """How far the compact renders are from the full ones, in 8-bit levels."""

    psnr: float
    max_error: int
    off_percent: float

    def meets(self, budget: CompactArgs) -> bool:
        return self.psnr >= budget.min_psnr and self.off_percent <= budget.max_off_percent

    def record(self) -> dict[str, float]:
        return {"psnr": round(self.psnr, 2), "max_error": self.max_error, "off_percent": round(self.off_percent, 3)}


@dataclass(frozen=True)
class Candidate:
    """One way to store a tensor: its method and rank, stored bytes, and relative error (‖decoded − target‖ / ‖target‖)."""

    method: str
    rank: int
    bytes: int
    error: float


class TensorOptions:
    """The candidates for one tensor, cheapest first, and the encoding of whichever is chosen."""

    def __init__(
        self, target: Tensor, base: Tensor, dtype: torch.dtype, methods: Collection[str] = delta.METHODS
    ) -> None:
        self.target, self.base, self.dtype = target.detach().float().cpu(), base.detach().float().cpu(), dtype
        difference = self.target - self.base
        norm = float(self.target.norm()) or 1.0
        self.dense = delta.encode_dense(self.target, self.base, dtype)
        self._factors: tuple[Tensor, Tensor] | None = None
        self._int8: delta.Encoding | None = None
        if not bool(difference.any()):
            self.candidates = [Candidate("same", 0, 0, 0.0)]
            return
        dense_error = float((delta.decode(self.base, self.dense) - self.target).norm()) / norm
        dense = Candidate("dense", 0, self.dense.bytes, dense_error)
        if difference.numel() < SMALL_TENSOR_VALUES or min(delta.matrix_shape(difference.shape)) == 1:
            self.candidates = [dense]
            return
        rows, cols = delta.matrix_shape(difference.shape)
        self._int8 = delta.encode_int8(difference)
        int8_error = float((delta.decode(self.base, self._int8) - self.target).norm()) / norm
        int8 = Candidate("int8", 0, self._int8.bytes, int8_error)
        left, right, singular = delta.svd_factors(difference)
        self._factors = (left, right)
        errors = lowrank_errors(left, right, singular)
        ranks = [
            Candidate("lowrank", rank, rank * (rows + cols) + 4 * (rows + rank), float(errors[rank - 1]) / norm)
            for rank in RANKS
            if rank < min(rows, cols) and rank * (rows + cols) + 4 * (rows + rank) < int8.bytes
        ]
        same = Candidate("same", 0, 0, float(difference.norm()) / norm)
        # dense always stays a choice: it is the fallback when nothing else is exact enough
        self.candidates = [c for c in (same, *ranks, int8) if c.method in methods] + [dense]

    def choose(self, tolerance: float) -> Candidate:
        """The candidate with the least bytes + (error / tolerance)²: one price for squared error across tensors.

        Each tensor's error adds about independently to the image's, so its squared relative errors add up; one
        price for all tensors spends the error where it saves the most bytes (rate-distortion allocation).
        """
        return min(self.candidates, key=lambda candidate: candidate.bytes + (candidate.error / tolerance) ** 2)

    def encoding(self, candidate: Candidate) -> delta.Encoding:
        if candidate.method == "same":
            return delta.Encoding("same", {})
        if candidate.method == "lowrank":
            return delta.encode_lowrank(*self._factors, candidate.rank)
        return self._int8 if candidate.method == "int8" else self.dense


def lowrank_errors(left: Tensor, right: Tensor, singular: Tensor) -> Tensor:
    """For every rank r = 1 … k, about ‖M − decoded rank-r factors‖: the truncation (‖σ[r:]‖) and the int8
    rounding of both factors (uniform rounding noise, variance scale²/12 per entry), added in quadrature."""
    tail = singular.double().pow(2).flip(0).cumsum(0).flip(0)  # tail[r] = Σ σ[r:]²
    truncation = torch.cat([tail[1:], tail.new_zeros(1)])  # what is left after keeping r = 1 … k
    left, right = left.double(), right.double()
    left_scales = left.abs().cummax(dim=1).values.pow(2).sum(0) / delta.INT8_LEVELS**2  # Σ_rows scale², per r
    right_scales = (right.abs().amax(dim=1) / delta.INT8_LEVELS).pow(2).cumsum(0)  # Σ_{j<r} scale_j²
    left_norms, right_norms = left.pow(2).sum(0).cumsum(0), right.pow(2).sum(1).cumsum(0)  # ‖U_r‖², ‖V_r‖²
    rounding = (left_scales * right_norms + left_norms * right_scales) / 12
    return (truncation + rounding).sqrt()


def measured_latents(base: Generator, count: int, seed: int, extra: Tensor | None = None) -> Tensor:
    """`count` seeded w+ [count (+ extra), n_latent, style_dim], ψ-truncated; `extra` (e.g. the test face) appended."""
    device = base.input.input.device
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(count, base.style_dim, generator=generator).to(device)
        average = base.mapping(torch.randn(4096, base.style_dim, generator=generator).to(device)).mean(0, keepdim=True)
        w = average + TRUNCATION * (base.mapping(z) - average)
    latents = w[:, None].repeat(1, base.n_latent, 1)
    if extra is not None:
        latents = torch.cat([latents, extra.to(device, latents.dtype).reshape(-1, base.n_latent, base.style_dim)])
    return latents


def render_levels(generator: Generator, latents: Tensor) -> Tensor:
    """The generator's images of `latents` in 8-bit levels (as saved images have them), uint8 [N, 3, H, W] on CPU."""
    images = []
    with torch.no_grad():
        for start in range(0, len(latents), RENDER_BATCH):
            batch = generator.synthesis(latents[start : start + RENDER_BATCH], noise="const")
            images.append(((batch.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
    return torch.cat(images)


def compare(reference: Tensor, candidate: Tensor, off_levels: int) -> Quality:
    """PSNR, largest error and % of pixels with a channel off by more than `off_levels`, between two level images."""
    difference = (reference.int() - candidate.int()).abs()
    mse = float(difference.double().pow(2).mean())
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(255**2 / mse))
    off = (difference.amax(dim=1) > off_levels).double().mean()
    return Quality(psnr, int(difference.max()), 100 * float(off))


def measure(reference: Generator, candidate: Generator, latents: Tensor, off_levels: int) -> Quality:
    """The quality of `candidate`'s renders against `reference`'s on `latents`."""
    return compare(render_levels(reference, latents), render_levels(candidate, latents), off_levels)


@dataclass
class Plan:
    """The chosen candidate of every tensor, what it costs and what it was measured to do."""

    choices: dict[str, Candidate]
    tolerance: float  # the loosest price (see TensorOptions.choose) any tensor was chosen at
    quality: Quality | None = None
    pinned: int = 0  # tensors kept tighter because loosening them alone broke the budget

    @property
    def bytes(self) -> int:
        return sum(candidate.bytes for candidate in self.choices.values())

    @property
    def signature(self) -> tuple:
        return tuple(sorted((key, candidate.method, candidate.rank) for key, candidate in self.choices.items()))

    def encodings(self, options: Mapping[str, TensorOptions]) -> dict[str, delta.Encoding]:
        """The stored form of every tensor that is not unchanged."""
        return {key: options[key].encoding(c) for key, c in self.choices.items() if c.method != "same"}

    def counts(self) -> dict[str, int]:
        """How many base tensors each method stores (unchanged ones included)."""
        methods = [candidate.method for candidate in self.choices.values()]
        return {method: methods.count(method) for method in delta.METHODS}


def plan_at(options: Mapping[str, TensorOptions], tolerance: float) -> Plan:
    """Every tensor at its best candidate for the price `tolerance` (see TensorOptions.choose)."""
    return Plan({key: option.choose(tolerance) for key, option in options.items()}, tolerance)


def apply_plan(generator: Generator, base: Generator, encodings: Mapping[str, delta.Encoding]) -> None:
    """Write base + each encoded difference into `generator`'s synthesis weights (the loader's arithmetic)."""
    unchanged = delta.Encoding("same", {})
    with torch.no_grad():
        for key, parameter in generator.synthesis_parameters().items():
            value = delta.decode(base.synthesis_parameters()[key], encodings.get(key, unchanged))
            parameter.copy_(value.to(parameter.device, parameter.dtype))


class Search:
    """Finds the cheapest plan whose renders meet the budget, in at most `max_rounds` rounds of measurement.

    First one tolerance for all tensors, ×/÷ TOLERANCE_STEP until a plan holds (and, when it held at once, until
    one fails). Then, from the plan that held, the tolerance doubles step by step and the tensors that a looser
    tolerance would make cheaper are tried as a group: a group that holds is kept, one that fails is halved and
    its halves tried, and a tensor that breaks the budget on its own is pinned (kept as it is). So the few
    tensors the picture is most sensitive to stay exact while the others get cheaper.
    """

    def __init__(
        self,
        options: Mapping[str, TensorOptions],
        check: Callable[[Plan], Quality],
        budget: CompactArgs,
        max_rounds: int = MAX_ROUNDS,
    ) -> None:
        self.options, self.check, self.budget, self.max_rounds = options, check, budget, max_rounds
        self.rounds, self.best = 0, None
        self._measured: dict[tuple, Quality] = {}

    def holds(self, plan: Plan) -> bool | None:
        """Whether `plan` meets the budget (measured once per distinct plan); None when no rounds are left."""
        if plan.signature not in self._measured:
            if self.rounds >= self.max_rounds:
                return None
            self._measured[plan.signature], self.rounds = self.check(plan), self.rounds + 1
        plan.quality = self._measured[plan.signature]
        if plan.quality.meets(self.budget):
            if self.best is None or plan.bytes < self.best.bytes:
                self.best = plan
            return True
        return False

    def run(self) -> Plan | None:
        """The cheapest plan that held (None when none did)."""
        if self.bracket() is not None:
            self.refine()
        return self.best

    def bracket(self) -> Plan | None:
        """The cheapest plan one common tolerance gives that holds."""
        tolerance, failed = START_TOLERANCE, False
        while (held := self.holds(plan := plan_at(self.options, tolerance))) is not None:
            if held and (failed or self.cheapest(plan)):
                return plan
            if not held and (self.best is not None or tolerance <= MIN_TOLERANCE):
                break
            failed = failed or not held
            tolerance = tolerance * TOLERANCE_STEP if held else max(tolerance / TOLERANCE_STEP, MIN_TOLERANCE)
        return self.best

    def cheapest(self, plan: Plan) -> bool:
        return all(plan.choices[key] is option.candidates[0] for key, option in self.options.items())

    def refine(self) -> None:
        """Loosen groups of tensors beyond the best plan's tolerance, pinning those that break the budget alone."""
        current, pinned = self.best, set()
        tolerance = current.tolerance

        def settled() -> bool:  # every tensor pinned or already at its cheapest
            return all(key in pinned or current.choices[key] is self.options[key].candidates[0] for key in self.options)

        while self.rounds < self.max_rounds and not settled():
            tolerance *= 2
            looser = {
                key: choice
                for key, option in self.options.items()
                if key not in pinned and (choice := option.choose(tolerance)).bytes < current.choices[key].bytes
            }
            saving = sorted(looser, key=lambda key: current.choices[key].bytes - looser[key].bytes, reverse=True)
            groups = [saving] if saving else []
            while groups:
                group = groups.pop()
                trial = Plan(current.choices | {key: looser[key] for key in group}, tolerance, pinned=len(pinned))
                held = self.holds(trial)
                if held is None:
                    return
                if held:
                    current = trial
                elif len(group) == 1:
                    pinned.add(group[0])
                    self.best.pinned = len(pinned)
                else:
                    groups += [group[len(group) // 2 :], group[: len(group) // 2]]


def dense_bytes(base: Generator, dtype: str) -> int:
    """The size of the pack's tensors stored in full (format 1) in `dtype`."""
    size = torch.finfo(DTYPES[dtype]).bits // 8
    return sum(value.numel() * size for value in base.synthesis_parameters().values())


def compact_pack(
    pack: StylePack,
    base: Generator,
    base_fingerprint: str,
    budget: CompactArgs | None = None,
    *,
    dtype: str = "float16",
    extra_latents: Tensor | None = None,
    methods: Collection[str] = delta.METHODS,
) -> tuple[StylePack, str]:
    """The pack stored as its difference from `base` within the budget, and one sentence saying what was done.

    When no plan below the full size meets the budget, the full pack (format 1) comes back and the sentence says so.
    A compact pack comes back as it is. Renders run on `base`'s device. `methods` limits the candidates (dense
    always stays one): for comparing the methods.
    """
    budget = budget or CompactArgs()
    if pack.is_compact:
        pack.check_fits(base, base_fingerprint)
        return pack, "Already compact."
    full = pack.expanded(base, base_fingerprint)
    base_weights = base.synthesis_parameters()
    options = {key: TensorOptions(full.tensors[key], base_weights[key], DTYPES[dtype], methods) for key in base_weights}
    latents = measured_latents(base, budget.latents, budget.seed, extra_latents)
    candidate_generator = copy.deepcopy(base)  # holds the full weights first, then each round's plan
    with torch.no_grad():
        for key, parameter in candidate_generator.synthesis_parameters().items():
            parameter.copy_(full.tensors[key].to(parameter.device, parameter.dtype))
    reference = render_levels(candidate_generator, latents)

    def check(plan: Plan) -> Quality:
        apply_plan(candidate_generator, base, plan.encodings(options))
        return compare(reference, render_levels(candidate_generator, latents), budget.off_levels)

    search = Search(options, check, budget)
    plan = search.run()
    full_bytes = dense_bytes(base, dtype)
    if plan is None or plan.bytes >= full_bytes:
        why = "no compact form met" if plan is None else f"the smallest that met it took {human_size(plan.bytes)}"
        return full, (
            f"Kept in full ({human_size(full_bytes)}): {why} the quality budget (PSNR ≥ {budget.min_psnr:g} dB, "
            f"≤ {budget.max_off_percent:g} % of pixels off by more than {budget.off_levels} levels)."
        )
    encodings = plan.encodings(options)
    record = {
        "methods": plan.counts(),
        "ranks": sorted({e.rank for e in encodings.values() if e.method == "lowrank"}),
        "measured": plan.quality.record(),
        "budget": dump(budget),
        "latents": len(latents),
        "tolerance": plan.tolerance,
        "pinned": plan.pinned,
        "rounds": search.rounds,
        "bytes": plan.bytes,
        "full_bytes": full_bytes,
        "dtype": dtype,
    }
    base_entry = pack.json_field("jojogan.base") | {"sha256": base_fingerprint}
    metadata = pack.metadata | {
        "jojogan.format_version": COMPACT_FORMAT_VERSION,
        "jojogan.base": json.dumps(base_entry),
        "jojogan.compression": json.dumps(record),
    }
    compacted = StylePack(delta.stored_tensors(encodings), metadata, pack.path, pack.preview)
    return compacted, describe(compacted.metadata) + "."


def describe(metadata: Mapping[str, str]) -> str:
    """What a pack's compression record says, in one line ('' for a pack without one)."""
    try:
        record = json.loads(metadata.get("jojogan.compression", "{}"))
        measured, budget = record["measured"], record["budget"]
        return (
            f"Compact: {human_size(record['bytes'])} instead of {human_size(record['full_bytes'])}, PSNR "
            f"{measured['psnr']:.1f} dB, {measured['off_percent']:.2f} % of pixels off by more than "
            f"{budget['off_levels']} levels (budget ≥ {budget['min_psnr']:g} dB, ≤ {budget['max_off_percent']:g} %)"
        )
    except (ValueError, KeyError, TypeError):
        return ""
