"""Web UI glue: JoJoGAN face restyling in the Extras tab (single image, batch, folder).

The stock extras REST API passes None for every extension argument: None means disabled.
"""

from pathlib import Path

from modules import devices, paths_internal, scripts_postprocessing, shared, ui_components

from jojogan_ext import accordion
from jojogan_ext.errors import JojoganError
from jojogan_ext.integration import RestyleOutcome, services_from_settings

EXTENSION_DIR = Path(__file__).resolve().parents[1]


def option(key: str, default):
    return shared.opts.data.get(key, default)


class JoJoGANExtras(scripts_postprocessing.ScriptPostprocessing):
    name = "JoJoGAN"
    order = 20000

    def ui(self):
        runtime = services_from_settings(option, EXTENSION_DIR, paths_internal.models_path, devices.device).runtime
        with ui_components.InputAccordion(False, label="JoJoGAN", elem_id="jojogan_extras") as enabled:
            controls = accordion.build_restyle_controls(
                runtime, enabled=enabled, elem_prefix="jojogan_extras", pack=option("jojogan_default_pack", "")
            )
        return dict(zip(accordion.ACCORDION_FIELDS, controls, strict=True))

    def process(self, pp: scripts_postprocessing.PostprocessedImage, **values):
        try:
            restyle_args = accordion.restyle_values([values.get(name) for name in accordion.ACCORDION_FIELDS])
        except JojoganError as error:  # e.g. a faces field that is not a list of numbers
            RestyleOutcome(pp.image, {}, str(error)).record(pp.info)
            return
        if not restyle_args["enabled"]:
            return
        found = services_from_settings(option, EXTENSION_DIR, paths_internal.models_path, devices.device)
        outcome = found.restyle_or_keep(pp.image, restyle_args, default_pack=option("jojogan_default_pack", ""))
        pp.image = outcome.image
        outcome.record(pp.info)  # the Extras info under the image
