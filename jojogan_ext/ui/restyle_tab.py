"""The Restyle tab: an image, a pack and the restyle options → result, face crops, message."""

from typing import Any

import gradio as gr
from PIL import Image

from ..accordion import ACCORDION_FIELDS, restyle_control, restyle_values
from ..args import RestyleArgs, parse
from ..errors import JojoganError
from ..runtime import Runtime
from .common import Handlers, lossless, shows_errors, uploaded_image

# The Restyle tab's controls (after the image): the accordion's, without its on/off switch.
RESTYLE_TAB_FIELDS = ACCORDION_FIELDS[1:]


class RestyleHandlers(Handlers):
    """The Restyle tab's button."""

    @shows_errors(outputs=3, cleared=(None, []))
    def restyle(self, image: Any, *values: Any) -> tuple[str, Image.Image, list]:
        """Restyle the faces of one uploaded image; also shows each face's aligned and stylized crop."""
        if image is None:
            raise JojoganError("Upload an image to restyle.")
        args = parse(RestyleArgs, restyle_values(values, RESTYLE_TAB_FIELDS))
        picture = uploaded_image(image, self.runtime.image_limits)
        with self.exclusive():
            result = self.restyler.restyle(picture, args)
        if result.faces:  # the Packs tab tries each pack on this face
            self.try_on.remember_restyled(result.faces[0].aligned)
        crops = []
        for face in result.faces:
            crops += [(face.aligned, f"face {face.index}: aligned"), (face.stylized, f"face {face.index}: restyled")]
        return result.message, result.image, crops


def build_restyle_tab(runtime: Runtime) -> dict[str, Any]:
    """Restyle: image, pack and options → result, face crops, message."""
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Image", file_types=["image"], elem_id="jojogan_restyle_image")
            controls = [restyle_control(runtime, name, "jojogan_restyle") for name in RESTYLE_TAB_FIELDS]
            button = gr.Button("Restyle", variant="primary", elem_id="jojogan_restyle_button")
        with gr.Column():
            status = gr.Textbox(label="Status", interactive=False, elem_id="jojogan_restyle_status")
            result = lossless(gr.Image, label="Result", type="pil", interactive=False, elem_id="jojogan_restyle_result")
            crops = lossless(
                gr.Gallery, label="Faces: aligned and restyled", columns=4, elem_id="jojogan_restyle_crops"
            )
    return {"image": image, "controls": controls, "button": button, "status": status, "result": result, "crops": crops}
