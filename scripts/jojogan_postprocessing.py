"""Web UI glue: JoJoGAN face restyling in the Extras tab (single image, batch, folder).

The stock extras REST API passes None for every extension argument: None means disabled.
"""

from pathlib import Path

from modules import devices, paths_internal, scripts_postprocessing, shared, ui_components

from jojogan_ext import ui
from jojogan_ext.errors import JojoganError
from jojogan_ext.integration import services_from_settings

EXTENSION_DIR = Path(__file__).resolve().parents[1]


def option(key: str, default):
    return shared.opts.data.get(key, default)


class JoJoGANExtras(scripts_postprocessing.ScriptPostprocessing):
    name = "JoJoGAN"
    order = 20000

    def ui(self):
        runtime = services_from_settings(option, EXTENSION_DIR, paths_internal.models_path, devices.device).runtime
        with ui_components.InputAccordion(False, label="JoJoGAN", elem_id="jojogan_extras") as enabled:
            controls = ui.build_restyle_controls(runtime, enabled=enabled, elem_prefix="jojogan_extras")
        return dict(zip(ui.ACCORDION_FIELDS, controls, strict=True))

    def process(self, pp: scripts_postprocessing.PostprocessedImage, **values):
        try:
            restyle_args = ui.restyle_values([values.get(name) for name in ui.ACCORDION_FIELDS])
        except JojoganError as error:  # e.g. a faces field that is not a list of numbers
            print(f"JoJoGAN: {error}")
            return
        if not restyle_args["enabled"]:
            return
        found = services_from_settings(option, EXTENSION_DIR, paths_internal.models_path, devices.device)
        image, infotext, message = found.restyle_or_keep(
            pp.image, restyle_args, default_pack=option("jojogan_default_pack", "")
        )
        pp.image = image
        pp.info.update(infotext)
        if message:
            print(f"JoJoGAN: {message}")
