"""The arguments of training and restyling: ONE definition for the UI, the API, infotext and the CLI.

Works with pydantic 1.10 (A1111) and 2.x (Forge): only the shared subset is used, behind `parse`/`dump`/`schema`.
"""

import contextlib
from typing import Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, Field, NonNegativeInt, confloat

from .errors import JojoganError

PYDANTIC_V2 = pydantic.VERSION.startswith("2")
Model = TypeVar("Model", bound=BaseModel)


class StrictModel(BaseModel):
    """Unknown fields are refused, so a typo never silently falls back to a default."""

    if PYDANTIC_V2:
        model_config = pydantic.ConfigDict(extra="forbid")
    else:

        class Config:
            extra = pydantic.Extra.forbid


class TrainArgs(StrictModel):
    """How to finetune a style pack from reference portraits (JoJoGAN)."""

    name: str = Field("my_style", min_length=1, max_length=100, description="Name of the new style pack.")
    iterations: int = Field(300, ge=1, le=2000, description="Finetuning steps; 200-500 is typical.")
    strength: float = Field(
        1.0, ge=0.0, le=1.0, description="How far fine layers move to random styles (JoJoGAN's alpha); 1 = strongest."
    )
    preserve_color: bool = Field(False, description="Keep the photo's colours; mix only the layers that carry shape.")
    loss: Literal["discriminator", "lpips"] = Field("discriminator", description="Perceptual loss of the finetuning.")
    identity_weight: float = Field(
        0.0, ge=0.0, le=10.0, description="Weight of the identity term (StyleIdentityGAN); 0 = off."
    )
    learning_rate: float = Field(2e-3, gt=0.0, le=0.1, description="Adam learning rate.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Random seed; empty = random.")
    references_are_aligned: bool = Field(
        False, description="The references are already square face crops: skip face detection and alignment."
    )


class RestyleArgs(StrictModel):
    """How to restyle the faces of an image with a style pack."""

    enabled: bool = Field(True, description="Restyle faces (the txt2img/img2img accordion's switch).")
    pack: str = Field("", max_length=200, description="Style pack name (file name without .safetensors).")
    strength: float = Field(
        1.0, ge=0.0, le=1.0, description="Blend of the generator weights: 0 = base model, 1 = the pack as trained."
    )
    face_indices: list[NonNegativeInt] | None = Field(
        None, description="Which faces to restyle (0 = largest); empty = all."
    )
    max_faces: int = Field(8, ge=1, le=64, description="At most this many faces per image.")
    confidence: float = Field(0.8, ge=0.05, le=1.0, description="Face detector confidence threshold.")
    min_face_size: int = Field(32, ge=8, le=4096, description="Ignore faces smaller than this (pixels).")
    feather: float = Field(0.15, ge=0.0, le=0.5, description="Softness of the pasted edge, relative to the face size.")
    color_match: bool = Field(False, description="Match the restyled face's colours to the original face.")


# Composition (issue 16): the base model's source name, and the bounds of a recipe
BASE_SOURCE = "base"
MAX_COMPOSE_SOURCES = 8
SwapResolution = Literal[4, 8, 16, 32, 64, 128, 256, 512, 1024]
MixWeight = confloat(ge=0.0, le=100.0)


class SwapRecipe(StrictModel):
    """Layer swap (Toonify): resolutions up to `at` from `low`, above it from `high`, optionally with a soft seam."""

    mode: Literal["swap"] = Field(..., description="'swap': take coarse layers from one source, fine from another.")
    low: str = Field(
        ..., min_length=1, max_length=200, description="Pack (or 'base') for resolutions up to `at`: pose, face shape."
    )
    high: str = Field(
        ..., min_length=1, max_length=200, description="Pack (or 'base') for resolutions above `at`: texture, colour."
    )
    at: SwapResolution = Field(..., description="Last resolution taken from `low` (4 … the generator's size).")
    transition: float = Field(
        0.0,
        ge=0.0,
        le=8.0,
        description="Width of a smooth seam in octaves (logistic over log2 of the resolution); 0 = hard.",
    )


class MixRecipe(StrictModel):
    """Weight interpolation: every synthesis tensor is the weighted mean of the sources' tensors."""

    mode: Literal["mix"] = Field(..., description="'mix': a weighted mean of packs (and 'base') at every resolution.")
    weights: dict[str, MixWeight] = Field(
        ...,
        description=f"Source (pack name or 'base') -> weight ≥ 0, 1 to {MAX_COMPOSE_SOURCES} sources; normalised to sum 1.",
    )


Recipe = SwapRecipe | MixRecipe
RECIPES: dict[str, type[BaseModel]] = {"swap": SwapRecipe, "mix": MixRecipe}


INFOTEXT_FIELDS = {"pack": "JoJoGAN pack", "strength": "JoJoGAN strength"}


def parse(model: type[Model], data: dict[str, Any] | None) -> Model:
    """Validated arguments from a plain dict, or one JojoganError sentence listing what is wrong."""
    try:
        return model.model_validate(data or {}) if PYDANTIC_V2 else model.parse_obj(data or {})
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'arguments'}: {e['msg']}" for e in error.errors()
        )
        raise JojoganError(f"Invalid {model.__name__}: {problems}.") from None


def dump(args: BaseModel) -> dict[str, Any]:
    """The arguments as a JSON-ready dict."""
    return args.model_dump() if PYDANTIC_V2 else args.dict()


def schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema (for the API's /schema route and UI hints)."""
    return model.model_json_schema() if PYDANTIC_V2 else model.schema()


def field_info(model: type[BaseModel], name: str) -> dict[str, Any]:
    """Default, bounds and description of one field, for building UI controls from the model."""
    prop = schema(model)["properties"][name]
    return {
        "default": prop.get("default"),
        "minimum": prop.get("minimum", prop.get("exclusiveMinimum")),
        "maximum": prop.get("maximum"),
        "description": prop.get("description", ""),
    }


def infotext(args: RestyleArgs) -> dict[str, str]:
    """The generation-parameter entries written under a restyled image."""
    return {label: str(getattr(args, field)) for field, label in INFOTEXT_FIELDS.items()}


def from_infotext(params: dict[str, str]) -> dict[str, Any]:
    """Restyle fields read back from pasted generation parameters (absent ones are left out)."""
    values: dict[str, Any] = {}
    if INFOTEXT_FIELDS["pack"] in params:
        values["pack"] = params[INFOTEXT_FIELDS["pack"]]
    with contextlib.suppress(KeyError, ValueError):
        values["strength"] = float(params[INFOTEXT_FIELDS["strength"]])
    return values


def parse_recipe(data: dict[str, Any] | None) -> Recipe:
    """A validated composition recipe, its model chosen by `mode` (a mix: 1 to 8 sources, weights not all 0);
    or one JojoganError sentence. Whether a swap resolution fits the generator is known only with the base."""
    mode = data.get("mode") if isinstance(data, dict) else None
    if not isinstance(mode, str) or mode not in RECIPES:
        raise JojoganError(f'A recipe needs "mode": one of {", ".join(repr(m) for m in RECIPES)}.')
    recipe = parse(RECIPES[mode], data)
    if isinstance(recipe, MixRecipe):
        if not 1 <= len(recipe.weights) <= MAX_COMPOSE_SOURCES:
            raise JojoganError(f"A mix takes 1 to {MAX_COMPOSE_SOURCES} sources, not {len(recipe.weights)}.")
        if sum(recipe.weights.values()) <= 0:
            raise JojoganError("The mix weights add up to 0; give at least one source a weight above 0.")
    return recipe
