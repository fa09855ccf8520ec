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
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import torch
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from PIL import Image
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from . import __version__
from .args import RestyleArgs, StrictModel, TrainArgs, describe_problems, dump, parse, schema
from .errors import BusyError, CancelledError, ImageError, JojoganError, MissingWeightsError
from .images import ImageLimits
from .jobs import TrainingJob, TrainingJobs
from .packs import (
    PACK_SUFFIX,
    THUMBNAIL_KEY,
    PackInfo,
    png_bytes,
    preview_path,
    read_pack_metadata,
    safe_pack_name,
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


# --- helpers shared with the gradio UI ----------------------------------------------------------


def status_for(error: JojoganError) -> int:
    """The HTTP status of a user-facing error: busy/cancelled 409, missing weights 503, else 422."""
    if isinstance(error, BusyError | CancelledError):
        return 409
    if isinstance(error, MissingWeightsError):
        return 503
    return 422


@contextlib.contextmanager
def http_errors(what: str) -> Iterator[None]:
    """Turn JojoganError into its HTTP status and torch/IO failures into a 500 (507: disk full), each a sentence."""
    try:
        yield
    except JojoganError as error:
        raise HTTPException(status_for(error), str(error)) from None
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


def pack_info(runtime: Runtime, name: str) -> PackInfo:
    """Header-only info of one existing pack (PackError when absent or not a pack)."""
    path = runtime.packs.existing(name)
    preview = preview_path(path)
    return PackInfo(path.stem, path, read_pack_metadata(path), preview if preview.is_file() else None)


def pack_summary(info: PackInfo, thumbnail: bool = False) -> dict[str, Any]:
    """A pack as JSON: name, title, file size, preview flag and its metadata strings (thumbnail on request)."""
    metadata = {key: value for key, value in info.metadata.items() if thumbnail or key != THUMBNAIL_KEY}
    return {
        "name": info.name,
        "title": info.title,
        "size_bytes": info.path.stat().st_size,
        "has_preview": info.preview is not None,
        "metadata": metadata,
    }


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
    return data


async def save_upload(request: Request, folder: Path, stem: str, limit: int) -> Path:
    """Stream the raw request body into `folder/<stem>.<sniffed suffix>` with a size cap."""
    check_declared_length(request, limit)
    upload = folder / f"{stem}.upload"
    size = 0
    with upload.open("wb") as file:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            file.write(chunk)
    if size == 0:
        raise HTTPException(422, "The upload is empty; send the file's bytes as the request body.")
    # the import gate judges the content; the suffix only names it the way the gate expects
    suffix = {"safetensors": PACK_SUFFIX, "torch": ".pt", "legacy": ".pt"}.get(sniff_weights_file(upload), ".upload")
    return upload.rename(folder / f"{stem}{suffix}")


def validation_sentence(error: RequestValidationError) -> str:
    """FastAPI's list of parameter problems as one sentence (query.name: is required; ...)."""
    return f"Invalid request: {'; '.join(describe_problems(list(error.errors()), 'request'))}."


class SentenceRoute(APIRoute):
    """A route whose parameter validation errors answer 422 with a `detail` sentence, like every other error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                return JSONResponse({"detail": validation_sentence(error)}, status_code=422)

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
    router = APIRouter(tags=["JoJoGAN"], route_class=SentenceRoute)
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
        """JSON schemas of the training and restyle arguments (bounds, defaults, descriptions)."""
        return {"TrainArgs": schema(TrainArgs), "RestyleArgs": schema(RestyleArgs)}

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
            return pack_summary(pack_info(runtime, name), thumbnail)

    @router.get("/packs/{name}/file")
    def download_pack(name: str) -> FileResponse:
        """The style pack's .safetensors file."""
        path = existing_pack(name)
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    @router.post("/packs", status_code=201)
    async def upload_pack(
        request: Request,
        name: str = Query(..., description="Name of the new style pack."),
        overwrite: bool = Query(False, description="Replace an existing pack of that name."),
    ) -> dict:
        """Add a style pack (.safetensors) or convert a JoJoGAN style (.pt); the raw file is the body."""
        with http_errors("Importing the style pack"):
            stem = safe_pack_name(name)
            runtime.packs.new_path(name, overwrite=overwrite)  # refuse a taken name before reading the body
        with tempfile.TemporaryDirectory(prefix="jojogan-upload-") as folder:
            upload = await save_upload(request, Path(folder), stem, max_upload_bytes)

            def work() -> dict:
                with http_errors("Importing the style pack"), exclusive():
                    path = runtime.import_pack(upload, name, overwrite=overwrite)
                    return pack_summary(pack_info(runtime, path.stem))

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
                if body.args.pack:
                    existing_pack(body.args.pack)
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
            return {**job_view(job), "args": dump(body.args)}

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
