"""Gradio builders shared by the web UI (the JoJoGAN tab) and the standalone app: one module per sub-tab.

Controls take bounds and defaults from `args.TrainArgs`/`RestyleArgs`; nothing here imports the web UI.
"""

import contextlib
from collections.abc import Mapping
from typing import Any

import gradio as gr

from .. import weights
from ..jobs import TrainingJobs
from ..runtime import Runtime
from .common import Exclusive, enable_queue, failure_message, uploaded_path
from .compose_section import ComposeHandlers, bind_compose_section
from .packs_tab import PackHandlers, build_packs_tab
from .restyle_tab import RestyleHandlers, build_restyle_tab
from .train_tab import TRAIN_FIELDS, TrainHandlers, build_train_tab, train_values
from .try_on_section import TryOnHandlers, bind_try_on_section

__all__ = [
    "TRAIN_FIELDS",
    "TabHandlers",
    "build_tab",
    "enable_queue",
    "failure_message",
    "train_values",
    "uploaded_path",
]


class TabHandlers(TrainHandlers, RestyleHandlers, PackHandlers, TryOnHandlers, ComposeHandlers):
    """What the JoJoGAN tab's buttons do, callable without a browser; each returns its outputs in order."""


def build_tab(
    runtime: Runtime,
    jobs: TrainingJobs,
    *,
    exclusive: Exclusive = contextlib.nullcontext,
    catalog: Mapping[str, weights.WeightFile] = weights.CATALOG,
    theme: Any = None,
    css: str | None = None,
) -> gr.Blocks:
    """The JoJoGAN tab (Train, Restyle, Packs) as gr.Blocks, for `on_ui_tabs` and the standalone app.

    `theme` and `css` only count where these Blocks are the page (the standalone app); the web UI uses its own.
    """
    handlers = TabHandlers(runtime, jobs, exclusive=exclusive, catalog=catalog)
    with gr.Blocks(analytics_enabled=False, title="JoJoGAN", theme=theme, css=css) as blocks:
        with gr.Tab("Train", elem_id="jojogan_train_tab"):
            train = build_train_tab()
        with gr.Tab("Restyle", elem_id="jojogan_restyle_tab"):
            restyle = build_restyle_tab(runtime)
        with gr.Tab("Packs", elem_id="jojogan_packs_tab") as packs_tab:
            packs = build_packs_tab(handlers)
        library = [packs["gallery"], packs["names"], packs["selected"], restyle["controls"][0]]

        train["prepare"].click(
            handlers.prepare,
            inputs=[train["references"], train["test_face"], train["aligned"], train["reference_face"]],
            outputs=[train["status"], train["pairs"]],
        )
        train["train"].click(
            handlers.train,
            inputs=[train["references"], train["test_face"], train["overwrite"], *train["controls"]],
            outputs=[train["status"], train["preview"], *library],
        )
        train["cancel"].click(handlers.cancel, inputs=[], outputs=[train["status"]], queue=False)

        restyle["button"].click(
            handlers.restyle,
            inputs=[restyle["image"], *restyle["controls"]],
            outputs=[restyle["status"], restyle["result"], restyle["crops"]],
            api_name="jojogan_restyle",
        )

        status = packs["status"]
        packs["refresh"].click(
            handlers.refresh, inputs=[packs["selected"]], outputs=[status, *library], api_name="jojogan_packs"
        )
        packs["gallery"].select(handlers.select, inputs=[packs["names"]], outputs=[packs["selected"]])
        shown = [status, packs["card"], *packs["details"]]
        packs["selected"].change(handlers.show, inputs=[packs["selected"]], outputs=shown, api_name="jojogan_pack")
        packs["save"].click(
            handlers.save_details,
            inputs=[packs["selected"], *packs["details"]],
            outputs=[status, packs["card"], *library],
        )
        packs["import"].click(
            handlers.import_file,
            inputs=[packs["upload"], packs["import_name"], packs["overwrite"], packs["import_compact"]],
            outputs=[status, *library],
        )
        packs["rename"].click(
            handlers.rename, inputs=[packs["selected"], packs["new_name"]], outputs=[status, *library]
        )
        packs["delete"].click(handlers.delete, inputs=[packs["selected"]], outputs=[status, *library])
        packs["download"].click(handlers.download, inputs=[packs["selected"]], outputs=[status, packs["file"]])
        packs["download_compact"].click(
            handlers.download_compact, inputs=[packs["selected"]], outputs=[status, packs["file"]]
        )
        packs["fetch"].click(handlers.fetch, inputs=[packs["published"]], outputs=[status, *library]).then(
            handlers.published_table, inputs=[], outputs=[packs["published_table"]], queue=False
        )
        bind_try_on_section(handlers, packs["try_on"], status, packs["selected"])
        bind_compose_section(handlers, packs["compose"], status, packs["selected"], library)
        compose_sources = packs["compose"]["sources"]
        tried_on = [status, packs["try_on"]["face"], packs["try_on"]["rendering"]]
        # The packs folder as it is now (packs trained or imported since the UI was built): whenever the Packs tab
        # is opened and, on gradio 4, on every page load. Not on load under gradio 3.41: an output arriving while a
        # file uploads can leave that upload hanging at "Uploading..." (seen on a loaded machine).
        loads = [packs_tab.select] + ([] if gr.__version__.startswith("3.") else [blocks.load])
        for event in loads:
            event(handlers.refresh, inputs=[packs["selected"]], outputs=[status, *library], queue=False).then(
                handlers.show, inputs=[packs["selected"]], outputs=shown, queue=False
            ).then(handlers.compose_sources, inputs=compose_sources, outputs=compose_sources, queue=False).then(
                handlers.try_on_show, inputs=[packs["selected"]], outputs=tried_on
            )
    return blocks
