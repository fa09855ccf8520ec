"""The REST API (`/jojogan/v1/...`): FastAPI routes over a Runtime and its TrainingJobs.

State lives in the router factory's closure (no module globals). Every user error becomes a JSON
`detail` sentence with a 4xx/503 status; the routes never import the web UI.
"""

import base64
import binascii
import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path, PureWindowsPath
from typing import Any, BinaryIO

import torch
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from PIL import Image
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from . import __version__
from .args import (
    CompactArgs,
    MixRecipe,
    RestyleArgs,
    StrictModel,
    SwapRecipe,
    TrainArgs,
    describe_problems,
    dump,
    parse,
    parse_recipe,
    schema,
)
from .errors import (
    BusyError,
    CancelledError,
    ImageError,
    JojoganError,
    MissingPackError,
    MissingWeightsError,
    PackExistsError,
)
from .images import ImageLimits
from .jobs import TrainingJob, TrainingJobs
from .packs import (
    MAX_NAME_LENGTH,
    PACK_SUFFIX,
    THUMBNAIL_KEY,
    PackInfo,
    plain_file_name,
    png_bytes,
    sniff_weights_file,
)
from .restyle import Restyler
from .runtime import Runtime

API_PREFIX = "/jojogan/v1"
# JSON bodies carry base64 images (4/3 of the encoded size): 64 MiB fits ~16 large photos.
MAX_JSON_BYTES = 64 * 2**20
# Pack uploads: a 1024 pack is 56.5 MB in float16, 113 MB in float32; JoJoGAN .pt styles are 132.8 MB.
MAX_UPLOAD_BYTES = 200 * 2**20
# References per training (JoJoGAN's largest published multi-shot style used 8).
MAX_REFERENCES = 16
# JSON nesting deeper than this is refused unread by pydantic (our bodies nest 3 levels)
MAX_JSON_DEPTH = 32
# half of a UTF-16 pair on its own: valid in JSON (`"\\ud800"`), but not text
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# what torch and the file system raise when work fails for reasons other than the user's input
WORK_FAILURES = (RuntimeError, OSError, MemoryError)

Exclusive = Callable[[], contextlib.AbstractContextManager]


class RestyleRequest(StrictModel):
    """POST restyle: one image and the restyle arguments."""

    image: str = Field(..., description="The image, base64-encoded PNG/JPEG/WebP (a data: URI prefix is allowed).")
    args: RestyleArgs = Field(default_factory=RestyleArgs, description="Restyle arguments (GET schema).")


class TrainRequest(StrictModel):
    """POST train: reference portraits, an optional test face and the training arguments."""

    references: list[str] = Field(..., description=f"1 to {MAX_REFERENCES} base64-encoded reference portraits.")
    test_face: str | None = Field(None, description="Optional base64 photo to preview the style on while training.")
    args: TrainArgs = Field(default_factory=TrainArgs, description="Training arguments (GET schema).")
    overwrite: bool = Field(False, description="Replace an existing style pack of the same name.")


class ComposeRequest(StrictModel):
    """POST packs/compose: the new pack's name and the recipe (a SwapRecipe or a MixRecipe, GET schema)."""

    name: str = Field(..., description="Name of the new style pack (the packs folder's name rules apply).")
    recipe: dict[str, Any] = Field(..., description="A recipe: {'mode': 'swap', …} or {'mode': 'mix', …}.")
    overwrite: bool = Field(False, description="Replace an existing style pack of the same name.")
    test_face: str | None = Field(None, description="Optional base64 photo to render the preview on.")


# compose answers a missing source with 404 and a taken name with 409 (other routes keep 422 for both)
COMPOSE_STATUSES: dict[type[JojoganError], int] = {MissingPackError: 404, PackExistsError: 409}


# --- helpers shared with the gradio UI ----------------------------------------------------------


def status_for(error: JojoganError, statuses: Mapping[type[JojoganError], int] | None = None) -> int:
    """The HTTP status of a user-facing error: a route's own `statuses` first, busy/cancelled 409,
    missing weights 503, no such pack 404, else 422."""
    for kind, status in (statuses or {}).items():
        if isinstance(error, kind):
            return status
    if isinstance(error, BusyError | CancelledError):
        return 409
    if isinstance(error, MissingWeightsError):
        return 503
    if isinstance(error, MissingPackError):
        return 404
    return 422


@contextlib.contextmanager
def http_errors(what: str, statuses: Mapping[type[JojoganError], int] | None = None) -> Iterator[None]:
    """Turn JojoganError into its HTTP status and torch/IO failures into a 500 (507: disk full), each a sentence."""
    try:
        yield
    except JojoganError as error:
        raise HTTPException(status_for(error, statuses), str(error)) from None
    except WORK_FAILURES as error:
        logging.getLogger("jojogan_ext").warning("%s failed", what, exc_info=error)
        first_line = str(error).splitlines()[0][:300] if str(error) else ""
        status = 507 if isinstance(error, OSError) and error.errno == errno.ENOSPC else 500  # disk full
        raise HTTPException(status, f"{what} failed: {type(error).__name__}: {first_line}.") from None


def decode_base64(data: Any, what: str) -> bytes:
    """The bytes of a base64 (or data: URI) string, or an ImageError naming `what`."""
    if not isinstance(data, str) or not data.strip():
        raise ImageError(f"{what} is empty; send the image as a base64-encoded PNG, JPEG or WebP.")
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"{what} is not valid base64; encode the image file's bytes with base64.") from None


def decode_image(data: Any, what: str, limits: ImageLimits | None = None) -> Image.Image:
    """A base64 (or data: URI) image → upright RGB through the image gate, or an ImageError naming `what`."""
    return (limits or ImageLimits()).open(decode_base64(data, what), what)


def encode_png(image: Image.Image) -> str:
    """An image as base64-encoded PNG."""
    return base64.b64encode(png_bytes(image)).decode()


def pack_summary(info: PackInfo, thumbnail: bool = False) -> dict[str, Any]:
    """A pack as JSON: name, title, file size, preview flag and its metadata strings (thumbnail on request)."""
    metadata = {key: value for key, value in info.metadata.items() if thumbnail or key != THUMBNAIL_KEY}
    return {
        "name": info.name,
        "title": info.title,
        "size_bytes": info.size_bytes,
        "has_preview": info.preview is not None,
        "metadata": metadata,
    }


def file_chunks(file: BinaryIO, temp_folder: Path | None = None, chunk_bytes: int = 2**20) -> Iterator[bytes]:
    """An open file's bytes in chunks, closing it at the end (the download streams from a handle, not a path);
    `temp_folder` (where a made-for-download file lies) is removed then too."""
    try:
        with file:
            while chunk := file.read(chunk_bytes):
                yield chunk
    finally:
        if temp_folder is not None:
            shutil.rmtree(temp_folder, ignore_errors=True)


# --- request bodies ------------------------------------------------------------------------------


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"The request body is larger than {limit // 2**20} MiB; send less data at once.")


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def lone_surrogate_at(value: Any) -> str | None:
    """Where (`args.name`) the first text holding a lone UTF-16 surrogate is, in keys or values; None if nowhere.

    `"\\ud800"` is valid JSON but not text: it cannot be stored, printed or sent back as UTF-8.
    """
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str) and LONE_SURROGATE.search(item):
            return path or "the body"
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in children:
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and LONE_SURROGATE.search(key):
                return f"a key in {path or 'the body'}"
            stack.append((child, where))
    return None


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object of the request body, read with a size cap; 413/422 with a sentence otherwise."""
    check_declared_length(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except RecursionError:
        raise HTTPException(422, "The request body nests too deeply; send a flat JSON object.") from None
    except json.JSONDecodeError as error:
        raise HTTPException(422, f"The request body is not valid JSON ({error}); send a JSON object.") from None
    except UnicodeDecodeError:
        raise HTTPException(422, "The request body is not UTF-8 text; send a JSON object.") from None
    except ValueError:  # an integer beyond Python's digit limit
        raise HTTPException(422, "The request body holds a number too long to read; send a JSON object.") from None
    if not isinstance(data, dict):
        raise HTTPException(422, "The request body must be a JSON object.")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise HTTPException(
            422, f"The request body nests deeper than {MAX_JSON_DEPTH} levels; send a flat JSON object."
        )
    where = lone_surrogate_at(data)
    if where is not None:
        where = where.encode("utf-8", "backslashreplace").decode()
        raise HTTPException(
            422, f"The request body holds a lone UTF-16 surrogate in {where}, which is not text; send valid Unicode."
        )
    return data


async def save_upload(request: Request, folder: Path, filename: str | None, limit: int) -> Path:
    """Stream the raw request body into `folder` with a size cap, under the name the gate's sentences will use.

    That is the client's `filename` (its last part, made plain), else `upload` with the suffix its content
    suggests, so that a refusal names what the user sent, never a temp file.
    """
    check_declared_length(request, limit)
    upload = folder / "body"
    size = 0
    with upload.open("wb") as file:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            file.write(chunk)
    name = plain_file_name(PureWindowsPath(filename or "").name)[:MAX_NAME_LENGTH]  # both kinds of separator
    if not name:
        name = "upload" + {"safetensors": PACK_SUFFIX, "torch": ".pt", "legacy": ".pt"}.get(
            sniff_weights_file(upload), ""
        )
    return upload.rename(folder / name)


def validation_sentence(error: RequestValidationError) -> str:
    """FastAPI's list of parameter problems as one sentence (query.name: is required; ...)."""
    return f"Invalid request: {'; '.join(describe_problems(list(error.errors()), 'request'))}."


class EncodableJSONResponse(JSONResponse):
    """JSON that always encodes: a lone surrogate a client sent (valid JSON `"\\ud800"`) goes back escaped."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


class SentenceRoute(APIRoute):
    """A route whose errors (parameter validation included) answer with a `detail` sentence, always encodable."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                return EncodableJSONResponse({"detail": validation_sentence(error)}, status_code=422)
            except HTTPException as error:
                return EncodableJSONResponse({"detail": error.detail}, status_code=error.status_code)

        return route


# --- the router ----------------------------------------------------------------------------------


def job_view(job: TrainingJob, preview: bool = False) -> dict[str, Any]:
    """A training job as JSON (the preview image as base64 PNG on request)."""
    view = job.summary()
    if preview:
        view["preview"] = encode_png(job.preview) if job.preview is not None else None
    return view


def create_router(
    runtime: Runtime,
    jobs: TrainingJobs,
    *,
    exclusive: Exclusive = contextlib.nullcontext,
    max_json_bytes: int = MAX_JSON_BYTES,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> APIRouter:
    """The `/jojogan/v1` routes (mount with `app.include_router(router, prefix=API_PREFIX)`).

    `exclusive()` wraps restyling and imports (the web UI passes its GPU queue lock); training runs in
    `jobs`, which has its own lock and hooks. Larger request bodies are refused with 413.
    """
    router = APIRouter(tags=["JoJoGAN"], route_class=SentenceRoute, default_response_class=EncodableJSONResponse)
    restyler = Restyler(runtime)

    def existing_pack(name: str) -> Path:
        """The pack's file; 422 for an unusable name, 404 when there is no such pack."""
        with http_errors("Finding the style pack"):
            path = runtime.packs.path_for(name)
        if not path.is_file():
            raise HTTPException(404, f"There is no style pack named '{path.stem}'; GET packs lists them.")
        return path

    def existing_job(job_id: str) -> TrainingJob:
        try:
            return jobs.get(job_id)
        except JojoganError:
            raise HTTPException(404, f"There is no training job '{job_id}'; POST train starts one.") from None

    @router.get("/version")
    def version() -> dict[str, Any]:
        """The extension's version, the device it computes on and its models folder (for bug reports)."""
        return {
            "version": __version__,
            "api": "v1",
            "device": str(runtime.device),
            "torch": torch.__version__,
            "models_dir": str(runtime.models_dir),
        }

    @router.get("/schema")
    def argument_schemas() -> dict[str, Any]:
        """JSON schemas of the training and restyle arguments, the compose recipes and the compact packs' quality
        budget (bounds, defaults, descriptions)."""
        return {
            "TrainArgs": schema(TrainArgs),
            "RestyleArgs": schema(RestyleArgs),
            "SwapRecipe": schema(SwapRecipe),
            "MixRecipe": schema(MixRecipe),
            "CompactArgs": schema(CompactArgs),
        }

    @router.get("/packs")
    def list_packs(thumbnails: bool = Query(False, description="Include the data: URI thumbnails.")) -> dict:
        """Every readable style pack with its metadata, and one sentence per unusable file."""
        return {
            "packs": [pack_summary(info, thumbnails) for info in runtime.packs.list()],
            "problems": runtime.packs.problems(),
        }

    @router.get("/packs/{name}")
    def get_pack(name: str, thumbnail: bool = Query(False, description="Include the data: URI thumbnail.")) -> dict:
        """One style pack's metadata."""
        existing_pack(name)
        with http_errors("Reading the style pack"):
            return pack_summary(runtime.packs.info(name), thumbnail)

    @router.get("/packs/{name}/file")
    def download_pack(
        name: str,
        compact: bool = Query(
            False,
            description="The compact form: a full pack is compacted for this download (the library is unchanged).",
        ),
    ) -> StreamingResponse:
        """The style pack's .safetensors file (opened first: a delete meanwhile answers 404 or the whole file)."""
        path = existing_pack(name)
        folder = None
        if compact:
            folder = Path(tempfile.mkdtemp(prefix="jojogan-download-"))
            try:
                with http_errors("Compacting the style pack"), exclusive():
                    path = runtime.compact_copy(path.stem, folder)[0]
            except HTTPException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        try:
            file = path.open("rb")
        except FileNotFoundError:
            raise HTTPException(404, f"There is no style pack named '{path.stem}'; GET packs lists them.") from None
        quoted = urllib.parse.quote(path.name)
        disposition = f'filename="{path.name}"' if quoted == path.name else f"filename*=utf-8''{quoted}"
        headers = {
            "content-length": str(os.fstat(file.fileno()).st_size),
            "content-disposition": f"attachment; {disposition}",
        }
        return StreamingResponse(file_chunks(file, folder), media_type="application/octet-stream", headers=headers)

    @router.post("/packs", status_code=201)
    async def upload_pack(
        request: Request,
        name: str = Query(..., description="Name of the new style pack."),
        overwrite: bool = Query(False, description="Replace an existing pack of that name."),
        filename: str | None = Query(None, description="The file's own name, used in messages (and for its kind)."),
        compact: bool = Query(False, description="Save a converted JoJoGAN style compact (a pack file is kept as is)."),
    ) -> dict:
        """Add a style pack (.safetensors) or convert a JoJoGAN style (.pt); the raw file is the body."""
        with http_errors("Importing the style pack"):
            runtime.packs.new_path(name, overwrite=overwrite)  # refuse a bad or taken name before reading the body
        with tempfile.TemporaryDirectory(prefix="jojogan-upload-") as folder:
            upload = await save_upload(request, Path(folder), filename, max_upload_bytes)

            def work() -> dict:
                with http_errors("Importing the style pack"), exclusive():
                    path = runtime.import_pack(upload, name, overwrite=overwrite, compact=compact)
                    return pack_summary(runtime.packs.info(path.stem))

            return await run_in_threadpool(work)

    @router.post("/packs/compose", status_code=201)
    async def compose_pack(request: Request) -> dict:
        """Compose a new pack from packs and the base: 201 and its summary; 404 unknown source, 409 name taken."""
        data = await read_json(request, max_json_bytes)

        def work() -> dict:
            with http_errors("Composing the style pack", COMPOSE_STATUSES):
                body = parse(ComposeRequest, data)
                recipe = parse_recipe(body.recipe)
                test_face = (
                    decode_image(body.test_face, "The test face", runtime.image_limits)
                    if body.test_face is not None
                    else None
                )
                with exclusive():
                    path = runtime.compose_pack(
                        body.name, recipe, overwrite=body.overwrite, dtype=jobs.pack_dtype, test_face=test_face
                    )
                return pack_summary(runtime.packs.info(path.stem))

        return await run_in_threadpool(work)

    @router.delete("/packs/{name}")
    def delete_pack(name: str) -> dict:
        """Delete a style pack and its preview."""
        path = existing_pack(name)
        with http_errors("Deleting the style pack"):
            runtime.packs.delete(path.stem)
        return {"deleted": path.stem}

    @router.post("/restyle")
    async def restyle(request: Request) -> dict:
        """Restyle the faces of one image: base64 in, base64 PNG out, plus the faces found."""
        data = await read_json(request, max_json_bytes)

        def work() -> dict:
            with http_errors("Restyling"):
                body = parse(RestyleRequest, data)
                image = decode_image(body.image, "The image", runtime.image_limits)
                if not body.args.enabled:
                    return {
                        "image": encode_png(image),
                        "faces": [],
                        "message": "Restyling is disabled (enabled=false).",
                    }
                for name in body.args.packs_used():  # the pack, each face's own, the swap's: 404 before any work
                    existing_pack(name)
                with exclusive():
                    result = restyler.restyle(image, body.args)
            faces = [
                {"index": face.index, "box": [round(v, 2) for v in face.face.box], "score": round(face.face.score, 4)}
                for face in result.faces
            ]
            return {"image": encode_png(result.image), "faces": faces, "message": result.message}

        return await run_in_threadpool(work)

    @router.post("/train", status_code=202)
    async def train(request: Request) -> dict:
        """Start finetuning a style pack in the background (one at a time: 409 while one runs)."""
        data = await read_json(request, max_json_bytes)

        def work() -> dict:
            with http_errors("Starting the training"):
                body = parse(TrainRequest, data)
                if not 1 <= len(body.references) <= MAX_REFERENCES:
                    raise JojoganError(f"Send 1 to {MAX_REFERENCES} reference portraits, not {len(body.references)}.")
                encoded = [decode_base64(item, f"Reference {n}") for n, item in enumerate(body.references, 1)]
                references = runtime.image_limits.open_all(encoded, "Reference")
                test_face = (
                    decode_image(body.test_face, "The test face", runtime.image_limits)
                    if body.test_face is not None
                    else None
                )
                job = jobs.start(references, body.args, test_face, overwrite=body.overwrite)
            return {**job_view(job), "args": dump(job.args)}

        return await run_in_threadpool(work)

    @router.get("/train/{job_id}")
    def training_status(
        job_id: str, preview: bool = Query(False, description="Include the live preview as base64 PNG.")
    ) -> dict:
        """State, step, total, loss, ETA, message and (when done) the new pack's name."""
        return job_view(existing_job(job_id), preview)

    @router.post("/train/{job_id}/cancel")
    def cancel_training(job_id: str) -> dict:
        """Ask the job to stop before its next step; nothing is saved."""
        existing_job(job_id)
        return job_view(jobs.cancel(job_id))

    return router
