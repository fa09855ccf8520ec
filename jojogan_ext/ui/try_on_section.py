"""The Packs tab's "Try on a face": the selected pack rendered on one test face (the core `TryOn` caches each)."""

from typing import Any

import gradio as gr
from PIL import Image

from .common import Handlers, rendered_image, shows_errors, uploaded_image

TRY_ON_HINT = (
    "The selected pack on a test face: the first face of your last restyle (Restyle tab), or a photo you upload "
    "here. Each rendering is kept, so browsing the packs stays instant."
)
FACE_HEIGHT = 120  # px on the page


class TryOnHandlers(Handlers):
    """Show the selected pack on the test face; upload or drop a test face."""

    @shows_errors(outputs=3)
    def try_on_show(self, name: str | None) -> tuple[Any, Image.Image | None, Image.Image | None]:
        """The test face and the selected pack rendered on it (nothing without a test face or a pack)."""
        return (gr.update(), *self.tried_on(name))

    def tried_on(self, name: str | None) -> tuple[Image.Image | None, Image.Image | None]:
        """The test face and pack `name` rendered on it (from the cache when it was rendered before)."""
        face = self.try_on.face
        if face is None or not name:
            return (face.image if face else None), None
        with self.exclusive():
            return face.image, self.try_on.pack(name)

    @shows_errors(outputs=3)
    def try_on_upload(self, upload: Any, name: str | None) -> tuple[Any, Image.Image | None, Image.Image | None]:
        """Use an uploaded photo's largest face as the test face (a cleared upload: back to the last restyle's)."""
        photo = None if upload is None else uploaded_image(upload, self.runtime.image_limits, "The test face")
        with self.exclusive():
            face = self.try_on.upload(photo)
        if face is None:
            return "No test face now: restyle a photo or upload one under 'Try on a face'.", None, None
        return (f"The packs are now tried on {face.described}.", *self.tried_on(name))


def build_try_on_section(opened: bool = True) -> dict[str, Any]:
    """Try on a face: the test face, the selected pack on it, and an upload for another face (closed while there
    is no pack to try)."""
    with gr.Accordion("Try on a face", open=opened, elem_id="jojogan_try_on"):
        gr.Markdown(TRY_ON_HINT)
        with gr.Row():
            rendering = rendered_image("The selected pack on the test face", "jojogan_try_on_image", scale=2)
            with gr.Column(scale=1, min_width=160):
                face = rendered_image("Test face", "jojogan_try_on_face", height=FACE_HEIGHT)
                upload = gr.File(
                    label="Upload a test face",
                    file_types=["image"],
                    height=FACE_HEIGHT,
                    elem_id="jojogan_try_on_upload",
                )
    return {"rendering": rendering, "face": face, "upload": upload}


def bind_try_on_section(handlers: TryOnHandlers, section: dict[str, Any], status: Any, selected: Any) -> None:
    """Render on a new selection and on a new (or cleared) test face."""
    outputs = [status, section["face"], section["rendering"]]
    selected.change(handlers.try_on_show, inputs=[selected], outputs=outputs)
    section["upload"].upload(handlers.try_on_upload, inputs=[section["upload"], selected], outputs=outputs)
    section["upload"].clear(handlers.try_on_upload, inputs=[section["upload"], selected], outputs=outputs)
