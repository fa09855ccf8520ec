"""Web UI glue: the JoJoGAN tab, its settings, the /jojogan/v1 routes and face restyling in txt2img/img2img.

Only wiring lives here; everything else is in the `jojogan_ext` core package.
"""

from pathlib import Path

import gradio as gr
from modules import call_queue, devices, paths_internal, script_callbacks, scripts, sd_models, shared, ui_components

from jojogan_ext import api, ui
from jojogan_ext.args import INFOTEXT_FIELDS, from_infotext
from jojogan_ext.integration import SETTINGS, Services, services_from_settings
from jojogan_ext.jobs import TrainingJob

EXTENSION_DIR = Path(__file__).resolve().parents[1]
SECTION = ("jojogan", "JoJoGAN")


class WebUIHooks:
    """How long jobs share the web UI: its queue lock, the SD model moved off the GPU, progress in shared.state."""

    def __init__(self):
        self.moved_model = None

    @staticmethod
    def exclusive():
        return call_queue.queue_lock

    def before(self) -> None:
        shared.state.begin(job="jojogan_train")
        shared.state.job, shared.state.job_count = "JoJoGAN training", 1  # begin() leaves -1: negative progress
        model = sd_models.model_data.sd_model  # the attribute, not shared.sd_model (which would load one)
        if model is not None and devices.device.type == "cuda":
            sd_models.send_model_to_cpu(model)
            self.moved_model = model

    def after(self) -> None:
        if self.moved_model is not None:
            sd_models.send_model_to_device(self.moved_model)
            self.moved_model = None
        if not option("jojogan_keep_loaded", True):
            services().runtime.unload()
        devices.torch_gc()
        shared.state.end()

    @staticmethod
    def observe(job: TrainingJob) -> None:
        shared.state.sampling_steps, shared.state.sampling_step = job.total, job.step
        shared.state.textinfo = job.message
        if job.preview is not None:
            shared.state.assign_current_image(job.preview)

    @staticmethod
    def interrupted() -> bool:
        return bool(shared.state.interrupted)


HOOKS = WebUIHooks()


def option(key: str, default):
    return shared.opts.data.get(key, default)


def services() -> Services:
    """The process's JoJoGAN services, following the current settings, with the web UI's hooks."""
    found = services_from_settings(option, EXTENSION_DIR, paths_internal.models_path, devices.device)
    if found.jobs.before is None:
        found.install_hooks(
            exclusive=HOOKS.exclusive,
            before=HOOKS.before,
            after=HOOKS.after,
            observe=HOOKS.observe,
            interrupted=HOOKS.interrupted,
        )
    return found


def on_ui_settings() -> None:
    for setting in SETTINGS:
        component_args = {"choices": list(setting.choices)} if setting.choices else None
        info = shared.OptionInfo(
            setting.default,
            setting.label,
            gr.Radio if setting.choices else None,
            component_args,
            onchange=None if setting.needs_restart else services,  # apply at once, also for API-only use
            section=SECTION,
        )
        shared.opts.add_option(setting.key, info.needs_restart() if setting.needs_restart else info)


def on_ui_tabs():
    found = services()
    return [(ui.build_tab(found.runtime, found.jobs, exclusive=found.exclusive), "JoJoGAN", "jojogan")]


def on_app_started(demo, app) -> None:
    found = services()
    app.include_router(api.create_router(found.runtime, found.jobs, exclusive=found.exclusive), prefix=api.API_PREFIX)


class JoJoGANScript(scripts.Script):
    """Restyles every generated face; API: alwayson_scripts {"JoJoGAN": {"args": [{RestyleArgs...}]}}."""

    def title(self) -> str:
        return "JoJoGAN"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        tab = "img2img" if is_img2img else "txt2img"
        runtime = services().runtime
        with ui_components.InputAccordion(False, label="JoJoGAN", elem_id=f"jojogan_{tab}") as enabled:
            controls = ui.build_restyle_controls(runtime, enabled=enabled, elem_prefix=f"jojogan_{tab}")
        pack, strength = controls[ui.ACCORDION_FIELDS.index("pack")], controls[ui.ACCORDION_FIELDS.index("strength")]
        default_pack = option("jojogan_default_pack", "")
        if default_pack:
            pack.value = default_pack
        state = gr.State(ui.restyle_values([control.value for control in controls]))
        for control in controls:
            control.change(lambda *values: ui.restyle_values(values), inputs=controls, outputs=[state], queue=False)
        pack_label, strength_label = INFOTEXT_FIELDS["pack"], INFOTEXT_FIELDS["strength"]
        defaults = state.value
        self.infotext_fields = [
            (enabled, lambda params: pack_label in params),
            (pack, pack_label),
            (strength, strength_label),
            # the script's argument itself, so that the API's "infotext" field restores restyling too
            (
                state,
                lambda params: {**defaults, "enabled": True, **from_infotext(params)} if pack_label in params else None,
            ),
        ]
        self.paste_field_names = [pack_label, strength_label]
        return [state]

    def postprocess_image(self, p, pp, restyle_args=None):
        if restyle_args is None or shared.state.interrupted:
            return
        if not isinstance(restyle_args, dict):
            print(f'JoJoGAN: the script argument must be one object like {{"pack": "name"}}, not {restyle_args!r:.80}.')
            return
        if not restyle_args.get("enabled", True):  # RestyleArgs' default: an API object without "enabled" restyles
            return
        image, infotext, message = services().restyle_or_keep(
            pp.image,
            restyle_args,
            should_stop=lambda: bool(shared.state.interrupted),
            default_pack=option("jojogan_default_pack", ""),
        )
        pp.image = image
        p.extra_generation_params.update(infotext)
        if message:
            print(f"JoJoGAN: {message}")

    def postprocess(self, p, processed, restyle_args=None):
        if (
            isinstance(restyle_args, dict)
            and restyle_args.get("enabled", True)
            and not option("jojogan_keep_loaded", True)
        ):
            services().runtime.unload()


script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_ui_tabs(on_ui_tabs)
script_callbacks.on_app_started(on_app_started)
