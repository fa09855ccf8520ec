"""`python -m jojogan_ext`: train, restyle, manage packs, import JoJoGAN styles, download weights, run the app.

Flags for training/restyling are generated from `args.TrainArgs`/`RestyleArgs`. Errors print one line
on stderr and exit with 1 (2 for usage errors), never a traceback.
"""

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from pydantic import BaseModel
from tqdm import tqdm

from . import __version__, weights
from .args import (
    CompactArgs,
    Recipe,
    RestyleArgs,
    TrainArgs,
    dump,
    field_info,
    parse,
    parse_face_packs,
    parse_recipe,
    schema,
)
from .errors import JojoganError
from .faces.detect import DEFAULT_NETWORK, DETECTOR_CHOICES, NETWORKS, resolve_network
from .images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageLimits

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
SKIP_FLAGS = {"enabled", "pack", "face_indices", "face_packs", "name"}


def add_model_flags(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """One flag per field of the pydantic model (bounds and help from the model itself)."""
    properties = schema(model)["properties"]
    for name, prop in properties.items():
        if name in SKIP_FLAGS:
            continue
        info = field_info(model, name)
        flag = "--" + name.replace("_", "-")
        if prop.get("type") == "boolean":
            parser.add_argument(flag, action="store_true", default=None, help=info["description"])
        elif "enum" in prop:
            kind = int if prop.get("type") == "integer" else str
            help_text = f"{info['description']} (default {info['default']})"
            parser.add_argument(flag, type=kind, choices=prop["enum"], help=help_text)
        else:
            kind = int if prop.get("type") == "integer" or "anyOf" in prop else float
            parser.add_argument(flag, type=kind, help=f"{info['description']} (default {info['default']})")


def model_values(namespace: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The flags the user actually gave, keyed by field name (the model supplies the defaults)."""
    names = schema(model)["properties"]
    return {name: getattr(namespace, name) for name in names if getattr(namespace, name, None) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jojogan_ext", description="JoJoGAN one-shot face stylization.")
    parser.add_argument("--version", action="version", version=f"sd-webui-jojogan {__version__}")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="models folder (base/, styles/)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (default: cuda when available)")
    parser.add_argument(
        "--precision",
        choices=["float32", "float16", "bfloat16"],
        default="float32",
        help="GPU only: half runs e4e and restyling in half and trains under autocast (float32 weights)",
    )
    parser.add_argument("--download", action="store_true", help="download missing model files when needed")
    parser.add_argument(
        "--detector",
        choices=list(DETECTOR_CHOICES),
        default=DEFAULT_NETWORK,
        help="face detector: auto = mobile0.25 on CPU (about 9x faster), resnet50 on GPU (finds more small faces)",
    )
    parser.add_argument(
        "--skip-detector-check",
        action="store_true",
        help="trust a detector file that is not the catalog's without its one-time self-check (your own weights)",
    )
    parser.add_argument(
        "--max-image-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images declaring more pixels than this (default {DEFAULT_MAX_PIXELS})",
    )
    parser.add_argument(
        "--max-image-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help=f"refuse image files larger than this (default {DEFAULT_MAX_BYTES})",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="finetune a style pack on reference portraits")
    train.add_argument("references", nargs="+", type=Path, help="reference portrait(s)")
    train.add_argument("--name", required=True, help="name of the new style pack")
    train.add_argument("--test-face", type=Path, help="a photo to preview the style on while training")
    train.add_argument("--dtype", choices=["float16", "float32"], default="float16", help="pack precision")
    train.add_argument("--overwrite", action="store_true", help="replace an existing pack of that name")
    train.add_argument(
        "--dense", action="store_true", help="save the full weights (format 1) instead of a compact pack (format 2)"
    )
    add_model_flags(train, TrainArgs)

    restyle = commands.add_parser("restyle", help="restyle the faces of images (files or folders)")
    restyle.add_argument("inputs", nargs="+", type=Path)
    restyle.add_argument("--pack", required=True, help="style pack name")
    restyle.add_argument("-o", "--output", type=Path, default=Path("restyled"), help="output folder")
    restyle.add_argument("--faces", type=int, nargs="+", help="indices of the faces to restyle (0 = largest)")
    restyle.add_argument(
        "--face-pack",
        action="append",
        metavar="FACE=PACK",
        help="another pack for one face, e.g. 1=ink (0 = largest; repeatable); the other faces use --pack",
    )
    add_model_flags(restyle, RestyleArgs)

    packs = commands.add_parser("packs", help="list, show, rename, delete, compact, expand, blend or mix style packs")
    packs_commands = packs.add_subparsers(dest="packs_command", required=True)
    packs_commands.add_parser("list")
    packs_commands.add_parser("show").add_argument("name")
    packs_commands.add_parser("delete").add_argument("name")
    rename = packs_commands.add_parser("rename")
    rename.add_argument("old")
    rename.add_argument("new")
    compact = packs_commands.add_parser(
        "compact", help="save a pack as its difference from the base, within a measured quality budget"
    )
    compact.add_argument("name")
    compact.add_argument("--out", help="name of the compact pack (default: NAME-compact); the original stays")
    compact.add_argument("--overwrite", action="store_true", help="replace an existing pack of that name")
    add_model_flags(compact, CompactArgs)
    expand = packs_commands.add_parser("expand", help="save a compact pack with its full weights (format 1)")
    expand.add_argument("name")
    expand.add_argument("--out", help="name of the full pack (default: NAME-full); the original stays")
    expand.add_argument("--overwrite", action="store_true", help="replace an existing pack of that name")
    expand.add_argument("--dtype", choices=["float16", "float32"], default="float16", help="pack precision")
    blend = packs_commands.add_parser(
        "blend", help="layer swap: resolutions up to --at from --low, above it from --high (packs or 'base')"
    )
    blend.add_argument("out", help="name of the new style pack")
    blend.add_argument("--low", required=True, help="pack (or 'base') for the coarse layers: pose, face shape")
    blend.add_argument("--high", required=True, help="pack (or 'base') for the fine layers: texture, colour")
    blend.add_argument("--at", required=True, help="last resolution taken from --low: a power of two, 4 … size")
    blend.add_argument("--transition", default="0", help="width of a smooth seam in octaves (default 0: hard)")
    mix = packs_commands.add_parser("mix", help="weighted mean of packs (and 'base'), e.g. ink=0.7 base=0.3")
    mix.add_argument("out", help="name of the new style pack")
    mix.add_argument("sources", nargs="+", metavar="SOURCE=WEIGHT", help="pack name (or 'base') and its weight")
    for composer in (blend, mix):
        composer.add_argument("--overwrite", action="store_true", help="replace an existing pack of that name")
        composer.add_argument("--dtype", choices=["float16", "float32"], default="float16", help="pack precision")
        composer.add_argument("--test-face", type=Path, help="a photo to render the preview on (default: average face)")

    importer = commands.add_parser("import", help="add a style pack (.safetensors) or convert a JoJoGAN style (.pt)")
    importer.add_argument("source", type=Path)
    importer.add_argument("--name", help="pack name (default: the file name)")
    importer.add_argument(
        "--dtype", choices=["float16", "float32"], default="float16", help="precision of converted .pt"
    )
    importer.add_argument("--overwrite", action="store_true", help="replace an existing pack of that name")
    importer.add_argument(
        "--compact", action="store_true", help="save a converted .pt compact (its difference from the base model)"
    )

    download = commands.add_parser("download", help="download model files or published styles")
    download.add_argument("names", nargs="*", help="catalog names (default: the base models)")
    download.add_argument("--list", action="store_true", help="list the catalog")

    app = commands.add_parser("app", help="run the standalone app (UI + API) on 127.0.0.1")
    app.add_argument("--host", default="127.0.0.1")
    app.add_argument("--port", type=int, default=7870)
    return parser


def make_runtime(options: argparse.Namespace):
    from .runtime import Runtime

    device = chosen_device(options)
    if options.precision != "float32" and torch.device(device).type == "cpu":
        raise JojoganError(f"--precision {options.precision} needs a GPU; on the CPU use float32 (the default).")
    limits = ImageLimits(options.max_image_pixels, options.max_image_bytes, 4 * options.max_image_pixels)
    return Runtime(
        options.models_dir,
        device=device,
        dtype=getattr(torch, options.precision),
        allow_download=options.download,
        detector_network=options.detector,
        verify_detector=not options.skip_detector_check,
        on_download=download_bar(),
        image_limits=limits,
    )


def chosen_device(options: argparse.Namespace) -> str:
    """The --device value, with "auto" turned into cuda when available, else cpu."""
    if options.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return options.device


def download_bar():
    """A tqdm bar per downloaded file, for Runtime/weights progress callbacks (on a terminal only)."""
    bars: dict[str, tqdm] = {}

    def report(name: str, done: int, total: int | None) -> None:
        bar = bars.setdefault(
            name, tqdm(total=total, unit="B", unit_scale=True, desc=name, file=sys.stderr, disable=None)
        )
        bar.update(done - bar.n)

    return report


def image_files(inputs: Sequence[Path]) -> list[Path]:
    """The image files named, with folders expanded (sorted)."""
    files = []
    for item in inputs:
        if item.is_dir():
            files.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif item.is_file():
            files.append(item)
        else:
            raise JojoganError(f"{item} does not exist.")
    if not files:
        raise JojoganError("No image files were given.")
    return files


def run_train(options: argparse.Namespace) -> None:
    from .compact import describe
    from .train import finetune

    args = parse(TrainArgs, {"name": options.name, **model_values(options, TrainArgs)})
    runtime = make_runtime(options)
    path = runtime.packs.new_path(args.name, overwrite=options.overwrite)
    args = parse(TrainArgs, {**dump(args), "name": path.stem})  # the cleaned name titles the pack
    references = runtime.image_limits.open_all(image_files(options.references), "Reference")
    test_face = runtime.image_limits.open(options.test_face, "The test face") if options.test_face else None
    with tqdm(total=args.iterations, desc=f"training '{args.name}'", file=sys.stderr, disable=None) as bar:

        def on_progress(step: int, total: int, loss: float, preview) -> None:
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{loss:.4f}")

        def on_faces(chosen: list) -> None:
            lines = [reference.describe(number) for number, reference in enumerate(chosen, 1)]
            tqdm.write("training on " + "; ".join(lines), file=sys.stderr)

        compact = None if options.dense else CompactArgs()
        pack = finetune(
            runtime, references, args, on_progress, test_face=test_face, on_faces=on_faces, compact=compact,
            pack_dtype=options.dtype,
        )  # fmt: skip
    pack.save(path, options.dtype, overwrite=options.overwrite)
    note = ""
    if pack.is_compact:
        note = f". {describe(pack.metadata)}"
    elif compact is not None:
        note = ". Kept in full: no compact form within the quality budget was smaller"
    print(f"saved style pack '{path.stem}' to {path}{note}")


def run_restyle(options: argparse.Namespace) -> None:
    from .restyle import Restyler

    values = {"pack": options.pack, "face_indices": options.faces, **model_values(options, RestyleArgs)}
    values["face_packs"] = face_packs_from_options(options.face_pack or [])
    args = parse(RestyleArgs, values)
    runtime = make_runtime(options)
    for name in args.packs_used():
        runtime.packs.existing(name)
    restyler = Restyler(runtime)
    options.output.mkdir(parents=True, exist_ok=True)
    for path in tqdm(image_files(options.inputs), desc="restyling", file=sys.stderr, disable=None):
        result = restyler.restyle(runtime.image_limits.open(path), args)
        target = options.output / f"{path.stem}_jojogan.png"
        result.image.save(target)
        tqdm.write(f"{path.name}: {result.message} -> {target}", file=sys.stderr)


def face_packs_from_options(given: Sequence[str]) -> dict[int, str]:
    """The `--face-pack FACE=PACK` flags as {face: pack}; one JojoganError sentence for a flag that does not read."""
    face_packs: dict[int, str] = {}
    for text in given:
        try:
            parsed = parse_face_packs(text)
        except ValueError as error:
            raise JojoganError(f"--face-pack {error}.") from None
        if len(parsed) != 1:
            raise JojoganError(f"--face-pack takes one face and its pack, like 1=ink, not {text!r}.")
        ((face, name),) = parsed.items()
        if face in face_packs:
            raise JojoganError(f"--face-pack names face {face} twice; give each face one pack.")
        face_packs[face] = name
    return face_packs


def number(text: str, flag: str, kind: type = float) -> float:
    """A command-line number, or one JojoganError sentence naming the flag."""
    try:
        value = kind(text)
    except ValueError:
        raise JojoganError(f"{flag} must be a {'whole ' if kind is int else ''}number, not {text!r}.") from None
    if not math.isfinite(value):
        raise JojoganError(f"{flag} must be a finite number, not {text!r}.")
    return value


def recipe_from_options(options: argparse.Namespace) -> Recipe:
    """The composition recipe of `packs blend` / `packs mix`, validated like the API's."""
    if options.packs_command == "blend":
        return parse_recipe(
            {
                "mode": "swap",
                "low": options.low,
                "high": options.high,
                "at": number(options.at, "--at", int),
                "transition": number(options.transition, "--transition"),
            }
        )
    weights: dict[str, float] = {}
    for item in options.sources:
        name, equals, weight = item.rpartition("=")
        if not equals or not name.strip():
            raise JojoganError(f"{item!r} is not SOURCE=WEIGHT; write e.g. ink=0.7 or base=0.3.")
        if name in weights:
            raise JojoganError(f"{name!r} is given twice; give each source once.")
        weights[name] = number(weight, f"The weight of {name!r}")
    return parse_recipe({"mode": "mix", "weights": weights})


def run_compose(options: argparse.Namespace) -> None:
    recipe = recipe_from_options(options)
    runtime = make_runtime(options)
    test_face = runtime.image_limits.open(options.test_face, "The test face") if options.test_face else None
    path = runtime.compose_pack(
        options.out, recipe, overwrite=options.overwrite, dtype=options.dtype, test_face=test_face
    )
    print(f"saved style pack '{path.stem}' to {path}")


def run_compact(options: argparse.Namespace) -> None:
    runtime = make_runtime(options)
    if options.packs_command == "compact":
        budget = parse(CompactArgs, model_values(options, CompactArgs))
        target = options.out or f"{options.name}-compact"
        path, message = runtime.save_compact(options.name, target, overwrite=options.overwrite, budget=budget)
    else:
        target = options.out or f"{options.name}-full"
        path = runtime.save_expanded(options.name, target, overwrite=options.overwrite, dtype=options.dtype)
        message = "Full weights (format 1)."
    print(f"saved style pack '{path.stem}' to {path} ({weights.human_size(path.stat().st_size)}). {message}")


def run_packs(options: argparse.Namespace) -> None:
    from .packs import PackLibrary

    if options.packs_command in ("blend", "mix"):
        run_compose(options)
        return
    if options.packs_command in ("compact", "expand"):
        run_compact(options)
        return
    library = PackLibrary(options.models_dir / "styles")
    if options.packs_command == "list":
        for info in library.list():
            print(f"{info.name}\t{info.title}\t{info.metadata.get('modelspec.date', '')}")
        for problem in library.problems():
            print(f"skipped: {problem}", file=sys.stderr)
    elif options.packs_command == "show":
        metadata = library.load(options.name).metadata
        print(json.dumps({k: v for k, v in metadata.items() if k != "modelspec.thumbnail"}, indent=2))
    elif options.packs_command == "delete":
        library.delete(options.name)
        print(f"deleted '{options.name}'")
    else:
        print(f"renamed to '{library.rename(options.old, options.new).stem}'")


def run_import(options: argparse.Namespace) -> None:
    runtime = make_runtime(options)
    name = options.name or options.source.stem
    path = runtime.import_pack(
        options.source, name, overwrite=options.overwrite, dtype=options.dtype, compact=options.compact
    )
    print(f"imported '{options.source.name}' as style pack '{path.stem}'")


def run_download(options: argparse.Namespace) -> None:
    from .runtime import BASE_FILE, E4E_FILE

    if options.list:
        for entry in weights.CATALOG.values():
            print(f"{entry.name}\t{weights.human_size(entry.size)}\t{entry.kind}\t{entry.description}")
        return
    detector = resolve_network(options.detector, chosen_device(options))
    names = options.names or [BASE_FILE, E4E_FILE, NETWORKS[detector][1]]
    folders = weights.WeightFolders(options.models_dir)
    found = weights.require(names, folders, allow_download=True, on_progress=download_bar())
    for name, path in found.items():
        print(f"{name}: {path}")


def run_app(options: argparse.Namespace) -> None:
    from .app import serve

    serve(make_runtime(options), host=options.host, port=options.port)


COMMANDS = {
    "train": run_train,
    "restyle": run_restyle,
    "packs": run_packs,
    "import": run_import,
    "download": run_download,
    "app": run_app,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 error, 130 interrupted)."""
    options = build_parser().parse_args(argv)
    # the error line is the message: Pillow's warnings about odd files would only add noise around it
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    try:
        COMMANDS[options.command](options)
    except JojoganError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, RuntimeError, MemoryError) as error:
        print(f"error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", file=sys.stderr)
        return 1
    return 0
