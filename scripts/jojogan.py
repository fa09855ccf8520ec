"""Web UI glue: the JoJoGAN tab, its settings, the /jojogan/v1 routes and face restyling in txt2img/img2img.

Only wiring lives here; everything else is in the `jojogan_ext` core package.
"""

import contextlib
import inspect
import types
from pathlib import Path

import gradio as gr
from modules import call_queue, devices, paths_internal, script_callbacks, scripts, sd_models, shared, ui_components

from jojogan_ext import accordion, api, ui, xyz
from jojogan_ext.errors import JojoganError
from jojogan_ext.integration import SETTINGS, RestyleOutcome, Services, services_from_settings
from jojogan_ext.jobs import TrainingJob

EXTENSION_DIR = Path(__file__).resolve().parents[1]
SECTION = ("jojogan", "JoJoGAN")
CATEGORY = "postprocessing"


def forge_memory_management() -> types.ModuleType | None:
    """Forge's model memory manager, found by what it can do (Forge's send_model_to_cpu/device do nothing)."""
    with contextlib.suppress(ImportError):
        from backend import memory_management  # Forge only

        if hasattr(memory_management, "unload_all_models") and hasattr(memory_management, "free_memory"):
            return memory_management
    return None


def make_room_on_gpu(num_bytes: int) -> None:
    """Before restyling on a GPU under Forge: let Forge unload as many of its models as that needs (it reloads them)."""
    memory = forge_memory_management()
    if memory is not None and devices.device.type == "cuda":
        memory.free_memory(num_bytes, memory.get_torch_device())


class WebUIHooks:
    """How long jobs share the web UI: its queue lock, the SD model off the GPU, progress in shared.state."""

    def __init__(self):
        self.moved_model = None

    @staticmethod
    def exclusive():
        return call_queue.queue_lock

    def before(self) -> None:
        shared.state.begin(job="jojogan_train")
        shared.state.job, shared.state.job_count = "JoJoGAN training", 1  # begin() leaves -1: negative progress
        if devices.device.type != "cuda":
            return
        memory = forge_memory_management()
        if memory is not None:  # Forge: unload everything through its manager; it reloads on demand afterwards
            memory.unload_all_models()
            memory.soft_empty_cache(force=True)
            return
        model = sd_models.model_data.sd_model  # the attribute, not shared.sd_model (which would load one)
        if model is not None:
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
        found.runtime.make_room = make_room_on_gpu
    return found


def pack_choices() -> dict:
    """The "Default style pack" dropdown's choices, read again whenever the settings page refreshes them.

    Only `choices`: the host's 🔄 passes these to gradio 3's Dropdown.update, which takes no other dropdown
    arguments. The current value stays a choice even when that pack is gone (gradio 4 refuses values not listed).
    """
    names = ["", *accordion.pack_names(services().runtime)]
    current = option("jojogan_default_pack", "")
    return {"choices": names if current in names else [*names, current]}


def on_ui_settings() -> None:
    accepted = inspect.signature(shared.OptionInfo).parameters
    # hosts with setting categories (A1111 >= 1.7, Forge) list the section under Postprocessing, not Uncategorized
    category = {"category_id": CATEGORY} if "category_id" in accepted else {}
    for setting in SETTINGS:
        component, component_args, extra = None, None, dict(category)
        if setting.choices:
            component, component_args = gr.Radio, {"choices": list(setting.choices)}
        elif setting.lists_packs:
            component, component_args = gr.Dropdown, pack_choices
            if "refresh" in accepted:
                extra["refresh"] = lambda: None  # the host's 🔄 beside it re-reads `pack_choices`
        info = shared.OptionInfo(
            setting.default,
            setting.label,
            component,
            component_args,
            onchange=None if setting.needs_restart else services,  # apply at once, also for API-only use
            section=SECTION,
            **extra,
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
            controls = accordion.build_restyle_controls(
                runtime, enabled=enabled, elem_prefix=f"jojogan_{tab}", pack=option("jojogan_default_pack", "")
            )
        # the host applies saved defaults and pasted parameters to these controls after ui(), and hands their
        # values to postprocess_image: nothing is captured here
        self.infotext_fields = accordion.paste_fields(controls)
        self.paste_field_names = accordion.paste_field_names()
        return controls

    def postprocess_image(self, p, pp, *script_args):
        if shared.state.interrupted:
            return
        try:  # an X/Y/Z plot cell's JoJoGAN axis values (if any) over the accordion's
            restyle_args = xyz.cell_arguments(accordion.script_arguments(script_args), p)
        except JojoganError as error:
            RestyleOutcome(pp.image, {}, str(error)).record(p.extra_generation_params)
            return
        if restyle_args is None or not restyle_args.get("enabled", True):  # an API object without "enabled" restyles
            return
        outcome = services().restyle_or_keep(
            pp.image,
            restyle_args,
            should_stop=lambda: bool(shared.state.interrupted),
            default_pack=option("jojogan_default_pack", ""),
        )
        pp.image = outcome.image
        outcome.record(p.extra_generation_params)  # the generation info under the image, the API's info, the PNG

    def postprocess(self, p, processed, *script_args):
        with contextlib.suppress(JojoganError):
            restyle_args = xyz.cell_arguments(accordion.script_arguments(script_args), p)
            if restyle_args and restyle_args.get("enabled", True) and not option("jojogan_keep_loaded", True):
                services().runtime.unload()


def add_xyz_axes() -> None:
    """The JoJoGAN axes in the web UI's X/Y/Z plot script (once all scripts are loaded, before its UI is built)."""
    module = xyz.find_xyz_module(scripts.scripts_data)
    if module is not None:
        xyz.add_axes(
            module,
            pack_names=lambda: accordion.pack_names(services().runtime),
            existing_pack=lambda name: services().runtime.packs.existing(name),
        )


script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_before_ui(add_xyz_axes)
script_callbacks.on_ui_tabs(on_ui_tabs)
script_callbacks.on_app_started(on_app_started)
