"""The standalone app: the REST API at /jojogan/v1 and the JoJoGAN UI at /, in one FastAPI app on uvicorn.

For use without the web UI (`python -m jojogan_ext app`); it binds to 127.0.0.1 unless told otherwise.
"""

import threading
from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from . import __version__
from .api import API_PREFIX, create_router
from .jobs import TrainingJobs
from .runtime import Runtime
from .ui import build_tab, enable_queue

# System fonts only: the default theme fetches Google Fonts, which an offline machine cannot reach.
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
SYSTEM_MONO_FONTS = ["ui-monospace", "Consolas", "monospace"]
# the extension's style rules, which the web UI loads by itself from the extension folder
STYLE_FILE = Path(__file__).resolve().parents[1] / "style.css"
# the web UI's small tool button (A1111 style.css, `.gradio-button.tool`), for the 🔄 beside the pack dropdown
TOOL_BUTTON_CSS = (
    ".tool { max-width: 2.2em; min-width: 2.2em !important; height: 2.4em; align-self: end; line-height: 1em; "
    "border-radius: 0.5em; }"
)


def page_css() -> str:
    """The standalone page's CSS: the extension's style.css plus what the web UI would otherwise provide."""
    own = STYLE_FILE.read_text(encoding="utf-8") if STYLE_FILE.is_file() else ""
    return own + "\n" + TOOL_BUTTON_CSS


def create_app(runtime: Runtime, jobs: TrainingJobs | None = None) -> FastAPI:
    """FastAPI app with the API router and the gradio UI mounted at / (one restyle at a time, one training)."""
    jobs = jobs if jobs is not None else TrainingJobs(runtime)
    lock = threading.Lock()  # restyling, preparing and importing share the device one at a time

    def exclusive() -> threading.Lock:
        return lock

    app = FastAPI(title="JoJoGAN", version=__version__, description="JoJoGAN one-shot face stylization.")
    app.include_router(create_router(runtime, jobs, exclusive=exclusive), prefix=API_PREFIX)
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)
    blocks = enable_queue(build_tab(runtime, jobs, exclusive=exclusive, theme=theme, css=page_css()))
    return gr.mount_gradio_app(app, blocks, path="/")


def serve(runtime: Runtime, host: str = "127.0.0.1", port: int = 7870) -> None:
    """Run the app until interrupted (Ctrl+C)."""
    import uvicorn  # installed with gradio

    print(f"JoJoGAN app on http://{host}:{port}/ (API under http://{host}:{port}{API_PREFIX}/)")
    uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning")
