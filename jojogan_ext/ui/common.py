"""What every part of the JoJoGAN tab shares: gradio version differences, error sentences, the library outputs.

Uses only what gradio 3.41 and 4.x share; their differences live in `uploaded_path`, `lossless` and `enable_queue`.
Handlers show the JojoganError sentence in a status box instead of raising; nothing here imports the web UI. Image
inputs are gr.File uploads, never gr.Image: gradio would decode those itself, before our size check (with Pillow's
bomb guard switched off by the web UI), so every picture reaches the image gate (`Runtime.image_limits`) undecoded.
"""

import contextlib
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from .. import weights
from ..errors import ImageError, JojoganError
from ..images import ImageLimits
from ..jobs import TrainingJobs
from ..packs import PackInfo, thumbnail_image
from ..restyle import Restyler
from ..runtime import Runtime
from ..try_on import TryOn

# what a new pack (trained, imported or downloaded) is good for next
NEW_PACK_NEXT = "It is chosen in the Restyle tab: upload a picture there to try it."
POLL_SECONDS = 1.0
# outputs of every action that changes the library: pack gallery, names state, selected pack, restyle pack
LIBRARY_OUTPUTS = 4
PLACEHOLDER_SIZE = 64
# what torch and the file system raise when work fails for reasons other than the user's input
WORK_FAILURES = (RuntimeError, OSError, MemoryError)

Exclusive = Callable[[], contextlib.AbstractContextManager]


# --- gradio version differences ------------------------------------------------------------------


def uploaded_path(item: Any) -> Path:
    """The path of one gr.File upload: gradio 3 hands temp-file objects over, gradio 4 path strings."""
    return Path(item if isinstance(item, str | os.PathLike) else item.name)


def uploaded_image(item: Any, limits: ImageLimits, what: str | None = None) -> Image.Image:
    """One uploaded picture (a gr.File upload, a path, or a PIL image from Python) through the image gate."""
    return limits.open(item if isinstance(item, Image.Image) else uploaded_path(item), what)


def lossless(component: type[gr.Image] | type[gr.Gallery], **kwargs: Any) -> gr.components.Component:
    """An image output served as PNG: gradio 4 would re-encode results as lossy WebP (gradio 3 sends PNG)."""
    if "format" in inspect.signature(component.__init__).parameters:
        kwargs["format"] = "png"
    return component(**kwargs)


RENDERING_HEIGHT = 256  # px on the page: a pack or a composition rendered on the test face


def rendered_image(label: str, elem_id: str, height: int = RENDERING_HEIGHT, **kwargs: Any) -> gr.Image:
    """A read-only image output for a rendering (served as PNG), `height` px tall on the page."""
    return lossless(gr.Image, label=label, interactive=False, height=height, elem_id=elem_id, **kwargs)


def enable_queue(blocks: gr.Blocks, workers: int = 4) -> gr.Blocks:
    """Turn the queue on (generators need it) with a few workers, so a training's progress never blocks the UI."""
    if "default_concurrency_limit" in inspect.signature(blocks.queue).parameters:  # gradio 4
        return blocks.queue(default_concurrency_limit=workers)
    return blocks.queue(concurrency_count=workers)  # gradio 3


# --- messages ------------------------------------------------------------------------------------


def failure_message(error: BaseException) -> str:
    """The sentence shown for a failed action."""
    if isinstance(error, JojoganError):
        return f"⚠️ {error}"
    logging.getLogger("jojogan_ext").warning("JoJoGAN action failed", exc_info=error)
    first_line = str(error).splitlines()[0][:300] if str(error) else ""
    detail = f": {first_line.rstrip('.')}" if first_line else ""
    return (
        f"⚠️ Something went wrong{detail}. Try again; if it keeps failing, report it with the details from the console."
    )


def shows_errors(outputs: int, cleared: tuple[Any, ...] | None = None) -> Callable[[Callable], Callable]:
    """Handler decorator: errors become the status text (the first of `outputs`).

    The other outputs stay as they are, or take the `cleared` values (e.g. an empty result image).
    """

    def failed(error: BaseException) -> Any:
        message = failure_message(error)
        rest = cleared if cleared is not None else tuple(gr.update() for _ in range(outputs - 1))
        return message if outputs == 1 else (message, *rest)

    def decorate(handler: Callable) -> Callable:
        if inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
                try:
                    yield from handler(*args, **kwargs)
                except (JojoganError, *WORK_FAILURES) as error:
                    yield failed(error)

            return stream

        @functools.wraps(handler)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except (JojoganError, *WORK_FAILURES) as error:
                return failed(error)

        return call

    return decorate


def format_duration(seconds: float) -> str:
    """12 s, 3:05 or 1:02:03."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


# --- the handlers' shared state ------------------------------------------------------------------


class Handlers:
    """The state behind the tab's handlers (runtime, jobs, device lock, catalog) and the library outputs they share.

    The first output of every handler is its tab's status text.
    """

    def __init__(
        self,
        runtime: Runtime,
        jobs: TrainingJobs,
        *,
        exclusive: Exclusive = contextlib.nullcontext,
        catalog: Mapping[str, weights.WeightFile] = weights.CATALOG,
        poll_seconds: float = POLL_SECONDS,
    ):
        self.runtime, self.jobs, self.exclusive = runtime, jobs, exclusive
        self.catalog, self.poll_seconds = catalog, poll_seconds
        self.restyler = Restyler(runtime)
        self.try_on = TryOn(runtime)  # the test face and each pack's rendering of it (Packs tab)
        self._download_dir: Path | None = None

    def library(self, selected: str | None = None, restyle_with_it: bool = False) -> tuple[Any, ...]:
        """Fresh pack gallery, names, selected-pack dropdown (on `selected` when it exists) and restyle dropdown.

        `restyle_with_it` also picks `selected` in the Restyle tab (a pack just trained or imported).
        """
        infos = self.runtime.packs.list()
        names = [info.name for info in infos]
        gallery = [(self.preview_image(info), caption(info)) for info in infos]
        value = selected if selected in names else (names[0] if names else None)
        restyle = gr.update(choices=names, value=value) if restyle_with_it else gr.update(choices=names)
        return gallery, names, gr.update(choices=names, value=value), restyle

    def no_library_change(self) -> tuple[Any, ...]:
        """Leave the library outputs as they are."""
        return tuple(gr.update() for _ in range(LIBRARY_OUTPUTS))

    def preview_image(self, info: PackInfo) -> Image.Image:
        """The pack's preview PNG, else its thumbnail, else a grey square."""
        if info.preview is not None:
            with contextlib.suppress(ImageError):
                return self.runtime.image_limits.open(info.preview)
        thumbnail = thumbnail_image(info.metadata)
        if thumbnail is not None:
            return thumbnail
        return Image.new("RGB", (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), (128, 128, 128))


def caption(info: PackInfo) -> str:
    """A gallery caption: the pack name, with its title when that differs."""
    return info.name if info.title == info.name else f"{info.title} ({info.name})"
