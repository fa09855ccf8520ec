"""The arguments of training and restyling: ONE definition for the UI, the API, infotext and the CLI.

Works with pydantic 1.10 (A1111) and 2.x (Forge): only the shared subset is used, behind `parse`/`dump`/`schema`.
Both versions get the same strict types (no lossy coercion) and the same JSON schema.
"""

import contextlib
import types
import typing
from typing import Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, Field, NonNegativeInt, confloat, constr

from .errors import JojoganError

PYDANTIC_V2 = pydantic.VERSION.startswith("2")
Model = TypeVar("Model", bound=BaseModel)
_KIND_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "int_list": "a list of whole numbers",
    "float_dict": "an object of numbers",
    "text_by_number": "an object of texts by whole numbers",
}


def _kind(annotation: Any) -> tuple[str | None, bool]:
    """A field's kind ('int', 'float', 'str', 'bool', 'int_list', 'float_dict', 'model'; None = not checked) and if
    None is allowed. A Literal of whole numbers is 'int', any other Literal 'str'."""
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
    if typing.get_origin(annotation) is Literal:
        values = typing.get_args(annotation)
        whole = all(isinstance(value, int) and not isinstance(value, bool) for value in values)
        return ("int" if whole else "str"), optional
    if typing.get_origin(annotation) is dict:
        key, value = (_kind(arg)[0] for arg in typing.get_args(annotation))
        kinds = {("str", "float"): "float_dict", ("int", "str"): "text_by_number"}
        return kinds.get((key, value)), optional
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return ("int_list" if _kind(item)[0] == "int" else None), optional
    for kind, python_type in (("bool", bool), ("int", int), ("float", float), ("str", str), ("model", BaseModel)):
        if isinstance(annotation, type) and issubclass(annotation, python_type):
            return kind, optional
    return None, optional


def _strict_value(kind: str, value: Any) -> Any:
    """`value` as `kind` without loss (300.0 → 300), or ValueError: pydantic 1 would turn 300.7 into 300 and 5 into '5'."""
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "str" and isinstance(value, str):
        return value
    if kind in ("int", "float") and isinstance(value, int | float) and not isinstance(value, bool):
        if kind == "float":
            return value
        if isinstance(value, int) or value.is_integer():
            return int(value)
    if kind == "int_list" and isinstance(value, list | tuple):
        return [_strict_value("int", item) for item in value]
    if kind == "float_dict" and isinstance(value, dict):
        return {key: _strict_value("float", item) for key, item in value.items()}
    if kind == "text_by_number" and isinstance(value, dict):  # JSON keys are text: "2" → 2, "2.5" is refused
        return {_whole_number_key(key): _strict_value("str", item) for key, item in value.items()}
    raise ValueError(f"must be {_KIND_WORDS[kind]}, not {value!r:.40}")


def _whole_number_key(key: Any) -> int:
    """A dict key as a whole number: 2, or the JSON key "2"."""
    if isinstance(key, str) and key.strip().isdigit():
        return int(key)
    return _strict_value("int", key)


def strict_values(model: type[BaseModel], data: Any) -> tuple[Any, list[str]]:
    """The data with lossless conversions applied, and one 'field: problem' per value of the wrong type."""
    if not isinstance(data, dict):
        return data, []
    hints = typing.get_type_hints(model)
    cleaned, problems = dict(data), []
    for name, value in data.items():
        kind, optional = _kind(hints.get(name))
        if kind is None or (value is None and optional):
            continue
        if kind == "model":  # a nested argument model: its problems are named by their path (args.strength)
            cleaned[name], nested = strict_values(typing.get_args(hints[name])[0] if optional else hints[name], value)
            problems += [f"{name}.{problem}" for problem in nested]
            continue
        try:
            cleaned[name] = _strict_value(kind, value)
        except ValueError as error:
            problems.append(f"{name}: {error}")
    return cleaned, problems


def _refuse_lossy_values(model: type[BaseModel], data: Any) -> Any:
    cleaned, problems = strict_values(model, data)
    if problems:
        raise ValueError("; ".join(problems))
    return cleaned


# The widest soft edge of a pasted face (fraction of the crop side): a wider ramp would not fit inside the
# paste mask's outline. faces/align.py reads it from here.
MAX_FEATHER = 0.4


class StrictModel(BaseModel):
    """Unknown fields are refused, so a typo never silently falls back to a default; no lossy type coercion."""

    if PYDANTIC_V2:
        model_config = pydantic.ConfigDict(extra="forbid")

        @pydantic.model_validator(mode="before")
        @classmethod
        def _strict_types(cls, data: Any) -> Any:
            return _refuse_lossy_values(cls, data)

    else:

        class Config:
            extra = pydantic.Extra.forbid

        @pydantic.root_validator(pre=True)
        def _strict_types(cls, data: Any) -> Any:
            return _refuse_lossy_values(cls, data)


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
    reference_face: int = Field(
        0, ge=0, le=63, description="Which face of each reference to train on, largest first (0 = the largest)."
    )


class PackDetails(StrictModel):
    """The details of a style pack that people may edit (written into its ModelSpec metadata)."""

    title: str = Field("", max_length=200, description="The pack's display title.")
    author: str = Field("", max_length=200, description="Who made the pack.")
    description: str = Field("", max_length=4000, description="What the style looks like, how to use it.")
    license: str = Field("", max_length=1000, description="The licence the pack is shared under.")


# Composition (issue 16): the base model's source name, and the resolutions a layer swap may happen at
BASE_SOURCE = "base"
SwapResolution = Literal[4, 8, 16, 32, 64, 128, 256, 512, 1024]
NO_SWAP = "off"  # how the UI and the X/Y/Z plot write "no layer swap" (swap_at None)


def swap_resolution(value: Any) -> int | None:
    """A swap resolution as the UI or an X/Y/Z axis writes it ('off', '', '64', 64) → None or 64 (ValueError);
    the args model checks that it is one of the resolutions."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", NO_SWAP)):
        return None
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError(f"'{value}' is not a resolution")
        return int(value)
    return value


# Faces per image, and how many of them may get a pack of their own (issue 16)
MAX_FACES = 64
MAX_FACE_PACKS = 16
FacePackName = constr(min_length=1, max_length=200)


def _schema_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """Field arguments that add `extra` to a field's JSON schema (pydantic 1 takes them as keywords)."""
    return {"json_schema_extra": extra} if PYDANTIC_V2 else extra


def check_face_packs(face_packs: dict[int, str]) -> dict[int, str]:
    """Per-face packs within bounds: face numbers 0 … MAX_FACES − 1, at most MAX_FACE_PACKS entries (ValueError)."""
    if len(face_packs) > MAX_FACE_PACKS:
        raise ValueError(f"at most {MAX_FACE_PACKS} faces can have a pack of their own, not {len(face_packs)}")
    outside = sorted(index for index in face_packs if not 0 <= index < MAX_FACES)
    if outside:
        raise ValueError(f"face {outside[0]} does not exist; faces are numbered 0 (the largest) to {MAX_FACES - 1}")
    return dict(sorted(face_packs.items()))


class CompactArgs(StrictModel):
    """The image-space budget of a compact pack: how close its renders must stay to those of the full weights."""

    min_psnr: float = Field(40.0, ge=20.0, le=100.0, description="Least PSNR (dB, 8-bit) of the compact renders.")
    max_off_percent: float = Field(
        1.0, ge=0.0, le=100.0, description="Most pixels (%) whose error exceeds off_levels in any channel."
    )
    off_levels: int = Field(4, ge=0, le=255, description="Error (8-bit levels) from which a pixel counts as off.")
    latents: int = Field(
        8, ge=1, le=32, description="Seeded latents rendered to measure (plus the test face's when there is one)."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the measured latents.")


class RestyleArgs(StrictModel):
    """How to restyle the faces of an image with a style pack."""

    enabled: bool = Field(True, description="Restyle faces (the txt2img/img2img accordion's switch).")
    pack: str = Field("", max_length=200, description="Style pack name (file name without .safetensors).")
    strength: float = Field(
        1.0, ge=0.0, le=1.0, description="Blend of the generator weights: 0 = base model, 1 = the pack as trained."
    )
    swap_at: SwapResolution | None = Field(
        None,
        description="Layer swap: the pack gives only the layers above this resolution, 'swap into' those up to it; "
        "empty (off) = the whole pack.",
    )
    swap_into: str = Field(
        BASE_SOURCE,
        min_length=1,
        max_length=200,
        description="Where the layers up to the swap resolution come from: another pack, or 'base' (the base model).",
    )
    face_indices: list[NonNegativeInt] | None = Field(
        None, description="Which faces to restyle (0 = largest); empty = all."
    )
    face_packs: dict[int, FacePackName] = Field(
        default_factory=dict,
        description="A pack of their own for some faces, by face number (0 = largest); "
        "the other faces use the style pack.",
        **_schema_extra({"maxProperties": MAX_FACE_PACKS}),
    )
    max_faces: int = Field(8, ge=1, le=MAX_FACES, description="At most this many faces per image.")
    confidence: float = Field(0.8, ge=0.05, le=1.0, description="Face detector confidence threshold.")
    min_face_size: int = Field(32, ge=8, le=4096, description="Ignore faces smaller than this (pixels).")
    feather: float = Field(
        0.15, ge=0.0, le=MAX_FEATHER, description="Softness of the pasted edge, relative to the face size."
    )
    color_match: bool = Field(False, description="Match the restyled face's colours to the original face.")

    if PYDANTIC_V2:

        @pydantic.field_validator("face_packs")
        @classmethod
        def _face_packs_in_bounds(cls, value: dict[int, str]) -> dict[int, str]:
            return check_face_packs(value)

    else:

        @pydantic.validator("face_packs")
        def _face_packs_in_bounds(cls, value: dict[int, str]) -> dict[int, str]:
            return check_face_packs(value)

    def pack_for(self, face_index: int) -> str:
        """The pack that restyles face `face_index` (documented order): its own, or `pack`."""
        return self.face_packs.get(face_index, self.pack)

    def packs_used(self) -> list[str]:
        """Every pack these arguments name (`pack`, each face's, a swap's `swap_into`), each once, `pack` first."""
        names = [self.pack, *self.face_packs.values(), self.swap_into if self.swap_at is not None else BASE_SOURCE]
        return [name for name in dict.fromkeys(names) if name and name != BASE_SOURCE]


# The bounds of a composition recipe
MAX_COMPOSE_SOURCES = 8
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


# Restyle fields in generation parameters ("JoJoGAN pack: ink, JoJoGAN strength: 0.8, ..."); pasting restores them.
INFOTEXT_FIELDS = {
    "pack": "JoJoGAN pack",
    "strength": "JoJoGAN strength",
    "swap_at": "JoJoGAN swap resolution",
    "swap_into": "JoJoGAN swap into",
    "face_indices": "JoJoGAN faces",
    "face_packs": "JoJoGAN face packs",
    "max_faces": "JoJoGAN max faces",
    "confidence": "JoJoGAN confidence",
    "min_face_size": "JoJoGAN min face size",
    "feather": "JoJoGAN feather",
    "color_match": "JoJoGAN color match",
}
ALWAYS_IN_INFOTEXT = ("pack", "strength")


def parse(model: type[Model], data: dict[str, Any] | None) -> Model:
    """Validated arguments from a plain dict, or one JojoganError sentence listing what is wrong."""
    data, problems = strict_values(model, data or {})
    if not problems:
        try:
            return model.model_validate(data) if PYDANTIC_V2 else model.parse_obj(data)
        except pydantic.ValidationError as error:
            problems = describe_problems(error.errors(), "arguments")
    raise JojoganError(f"Invalid {model.__name__}: {'; '.join(problems)}.")


# pydantic's error types (1.10: "value_error.missing", 2.x: "missing") → one wording on both stacks
_MESSAGES = {
    "missing": "is required",
    "dict": "must be an object",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "list": "must be a list",
    "list_type": "must be a list",
    "extra": "is not an option here (check the spelling)",
    "extra_forbidden": "is not an option here (check the spelling)",
}


# number bounds: the words, pydantic 1's and 2's error types, pydantic 2's `ctx` key (pydantic 1: limit_value)
_NUMBER_BOUNDS = (
    ("at most", ("not_le", "less_than_equal"), "le"),
    ("at least", ("not_ge", "greater_than_equal"), "ge"),
    ("below", ("not_lt", "less_than"), "lt"),
    ("above", ("not_gt", "greater_than"), "gt"),
)


def _bound_message(kind: str, context: dict[str, Any]) -> str | None:
    """Bound, text-length and choice errors in one wording (pydantic 1 and 2 keep their limits in other `ctx` keys)."""
    if kind in ("min_length", "string_too_short", "max_length", "string_too_long"):
        least = kind in ("min_length", "string_too_short")
        limit = context.get("limit_value", context.get("min_length" if least else "max_length"))
        return f"must be at {'least' if least else 'most'} {limit} character{'s' if limit != 1 else ''} long"
    for words, kinds, key in _NUMBER_BOUNDS:
        if kind in kinds:
            return f"must be {words} {context.get('limit_value', context.get(key))}"
    if kind in ("const", "literal_error"):
        permitted = context.get("permitted")
        if permitted is not None:  # pydantic 1: the values; pydantic 2 words them as "4, 8 or 16" itself
            words = [repr(value) for value in permitted]
            return f"must be {', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else f"must be {words[0]}"
        return f"must be {context.get('expected')}"
    return None


def describe_problems(errors: list[dict[str, Any]], whole: str) -> list[str]:
    """pydantic's (or FastAPI's) validation errors as 'where: what' in the same words under pydantic 1 and 2."""
    problems = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "__root__") or whole
        kind = str(error.get("type", "")).split(".")[-1]
        message = _MESSAGES.get(kind) or _bound_message(kind, error.get("ctx") or {})
        problems.append(f"{where}: {message or str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return problems


def dump(args: BaseModel) -> dict[str, Any]:
    """The arguments as a JSON-ready dict."""
    return args.model_dump() if PYDANTIC_V2 else args.dict()


def defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Every field's default value."""
    return dump(model())


def schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema (for the API's /schema route and UI hints), the same under pydantic 1 and 2.

    pydantic 2 writes an optional field as anyOf [X, null] (which hides X's bounds) and pydantic 1 leaves
    its null default out: both become X plus `"nullable": true` and `"default": null`; pydantic 2's extra
    `const` beside a one-value enum is dropped.
    """
    raw = model.model_json_schema() if PYDANTIC_V2 else model.schema()
    hints = typing.get_type_hints(model)
    properties = {}
    for name, prop in raw["properties"].items():
        prop = dict(prop)
        variants = prop.pop("anyOf", None)
        if variants is not None:
            (inner,) = [variant for variant in variants if variant != {"type": "null"}]
            prop = {**inner, **prop}
        if _kind(hints[name])[1]:
            prop.update(nullable=True, default=prop.get("default"))
        if "enum" in prop:  # pydantic 2 repeats a one-value Literal as "const"; the enum says it on both
            prop.pop("const", None)
        properties[name] = prop
    return {**raw, "properties": properties}


def field_info(model: type[BaseModel], name: str) -> dict[str, Any]:
    """Default, bounds and description of one field, for building UI controls from the model."""
    prop = schema(model)["properties"][name]
    return {
        "default": prop.get("default"),
        "minimum": prop.get("minimum", prop.get("exclusiveMinimum")),
        "maximum": prop.get("maximum"),
        "description": prop.get("description", ""),
    }


def format_face_packs(face_packs: dict[int, str]) -> str:
    """Per-face packs as people write them: "1=ink, 3=sketch" (the accordion's text, the infotext)."""
    return ", ".join(f"{index}={name}" for index, name in sorted(face_packs.items()))


def parse_face_packs(text: str) -> dict[int, str]:
    """ "1=ink, 3=sketch" → {1: "ink", 3: "sketch"}; empty → {}; ValueError naming the part that does not read."""
    face_packs: dict[int, str] = {}
    for part in str(text).replace(";", ",").split(","):
        if not part.strip():
            continue
        index, equals, name = part.partition("=")
        if not equals or not index.strip().isdigit() or not name.strip():
            raise ValueError(f"'{part.strip()}' is not face=pack (like 1=ink)")
        face_packs[int(index)] = name.strip()
    return face_packs


def _infotext_value(value: Any) -> str:
    if isinstance(value, dict):
        return format_face_packs(value)
    return ", ".join(str(item) for item in value) if isinstance(value, list) else str(value)


def infotext(args: RestyleArgs) -> dict[str, str]:
    """The generation-parameter entries written under a restyled image: pack, strength and what differs from defaults."""
    default = defaults(RestyleArgs)
    return {
        label: _infotext_value(getattr(args, field))
        for field, label in INFOTEXT_FIELDS.items()
        if field in ALWAYS_IN_INFOTEXT or getattr(args, field) != default[field]
    }


def _from_text(kind: str | None, text: str) -> Any:
    """One infotext value back to its field's type (ValueError when it does not read as one)."""
    text = str(text).strip()
    if kind == "bool":
        if text not in ("True", "False"):
            raise ValueError(text)
        return text == "True"
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "int_list":
        return [int(part) for part in text.replace(",", " ").split()]
    if kind == "text_by_number":
        return parse_face_packs(text)
    return text


def from_infotext(params: dict[str, Any]) -> dict[str, Any]:
    """The restyle fields of pasted generation parameters: {} without a JoJoGAN pack, else every field.

    The infotext lists only what differs from the defaults, so an absent field means its default.
    Unreadable values keep their defaults.
    """
    if INFOTEXT_FIELDS["pack"] not in params:
        return {}
    hints = typing.get_type_hints(RestyleArgs)
    values = defaults(RestyleArgs)
    for field, label in INFOTEXT_FIELDS.items():
        if label in params:
            with contextlib.suppress(ValueError):
                values[field] = _from_text(_kind(hints[field])[0], params[label])
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
