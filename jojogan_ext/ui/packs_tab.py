"""The Packs tab: the pack gallery and card, editable details, import, rename, delete, download and the
published styles."""

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from .. import weights
from ..errors import ImageError, JojoganError
from ..pack_card import empty_card_html, image_data_uri, pack_card_html
from ..packs import DETAIL_KEYS, PackInfo, thumbnail_image, update_pack_details
from ..style_gallery import PublishedStyle, gallery_html, published_styles, resolve
from .common import LIBRARY_OUTPUTS, NEW_PACK_NEXT, WORK_FAILURES, Handlers, lossless, shows_errors, uploaded_path
from .compose_section import build_compose_section
from .try_on_section import build_try_on_section

# the pack details the Packs tab edits (PackDetails fields), with their labels and text box heights
DETAIL_LABELS = {"title": "Title", "author": "Author", "description": "Description", "license": "Licence"}
DETAIL_LINES = {"title": 1, "author": 1, "description": 3, "license": 2}
EMPTY_STATUS = "No style packs yet: train one, import one or download a published style (see below)."


class PackHandlers(Handlers):
    """The Packs tab's actions; each returns its outputs in order, the status first."""

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def refresh(self, selected: str | None = None) -> tuple[Any, ...]:
        """Re-read the packs folder; unusable files are named in the status."""
        library = self.library(selected)
        count = len(library[1])
        lines = [f"{count} style pack{'s' if count != 1 else ''}." if count else EMPTY_STATUS]
        lines += [f"Skipped: {problem}" for problem in self.runtime.packs.problems()]
        return ("\n".join(lines), *library)

    def select(self, names: list[str] | None, event: gr.SelectData) -> Any:
        """A click in the pack gallery selects that pack."""
        index = event.index if isinstance(event.index, int) else None
        if not names or index is None or not 0 <= index < len(names):
            return gr.update()
        return gr.update(value=names[index])

    def card(self, info: PackInfo | None) -> str:
        """The HTML card of a pack (its preview, details and training facts), or the empty-library hint."""
        if info is None:
            return empty_card_html()
        preview = None
        if info.preview is not None:
            with contextlib.suppress(ImageError):
                preview = self.runtime.image_limits.open(info.preview)
        preview = preview or thumbnail_image(info.metadata)
        return pack_card_html(
            info.name,
            info.metadata,
            file_name=info.path.name,
            file_size=info.path.stat().st_size,
            preview_uri=image_data_uri(preview) if preview is not None else None,
        )

    @shows_errors(outputs=2 + len(DETAIL_KEYS))
    def show(self, name: str | None) -> tuple[Any, ...]:
        """The selected pack's card and its editable details (the status is left alone when all is well)."""
        if not name:
            return (gr.update(), self.card(None), *("" for _ in DETAIL_KEYS))
        info = self.runtime.packs.info(name)
        details = (info.metadata.get(key, "") for key in DETAIL_KEYS.values())
        return (gr.update(), self.card(info), *details)

    @shows_errors(outputs=2 + LIBRARY_OUTPUTS)
    def save_details(self, name: str | None, *values: Any) -> tuple[Any, ...]:
        """Write the edited title, author, description and licence into the selected pack's metadata."""
        if not name:
            raise JojoganError("Select a style pack first, then edit its details.")
        path = self.runtime.packs.existing(name)
        update_pack_details(path, dict(zip(DETAIL_KEYS, values, strict=True)))
        message = f"Saved the details of '{name}'; the pack's weights are unchanged."
        return (message, self.card(self.runtime.packs.info(name)), *self.library(name))

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def import_file(self, upload: Any, name: str | None, overwrite: bool, compact: bool = False) -> tuple[Any, ...]:
        """Import an uploaded style pack (.safetensors) or JoJoGAN style (.pt; saved compact when asked)."""
        if upload is None:
            raise JojoganError("Choose a .safetensors style pack or a JoJoGAN .pt file to import.")
        source = uploaded_path(upload)
        target = (name or "").strip() or source.stem
        with self.exclusive():
            path = self.runtime.import_pack(source, target, overwrite=bool(overwrite), compact=bool(compact))
        message = f"Imported {source.name} as style pack '{path.stem}'. {NEW_PACK_NEXT}"
        return (message, *self.library(path.stem, restyle_with_it=True))

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def rename(self, name: str | None, new_name: str | None) -> tuple[Any, ...]:
        """Rename the selected pack (and its preview); a taken name is refused."""
        if not name:
            raise JojoganError("Select a style pack to rename.")
        path = self.runtime.packs.rename(name, (new_name or "").strip())
        return (f"Renamed '{name}' to '{path.stem}'.", *self.library(path.stem))

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def delete(self, name: str | None) -> tuple[Any, ...]:
        """Delete the selected pack and its preview."""
        if not name:
            raise JojoganError("Select a style pack to delete.")
        self.runtime.packs.delete(name)
        return (f"Deleted style pack '{name}'.", *self.library())

    @shows_errors(outputs=2)
    def download(self, name: str | None) -> tuple[str, Any]:
        """A copy of the pack file in a temp folder (gradio serves files from there in every version)."""
        if not name:
            raise JojoganError("Select a style pack to download.")
        path = self.runtime.packs.existing(name)
        if self._download_dir is None:
            self._download_dir = Path(tempfile.mkdtemp(prefix="jojogan-downloads-"))
        copy = self._download_dir / path.name
        shutil.copyfile(path, copy)
        return f"'{path.stem}' is ready: save it with the link below.", gr.update(value=str(copy), visible=True)

    @shows_errors(outputs=2)
    def download_compact(self, name: str | None) -> tuple[str, Any]:
        """The pack's compact form (made for the download, within the default budget) in a temp folder."""
        if not name:
            raise JojoganError("Select a style pack to download.")
        if self._download_dir is None:
            self._download_dir = Path(tempfile.mkdtemp(prefix="jojogan-downloads-"))
        folder = self._download_dir / "compact"
        folder.mkdir(exist_ok=True)
        with self.exclusive():
            path, message = self.runtime.compact_copy(name, folder)
        size = weights.human_size(path.stat().st_size)
        status = f"'{path.stem}' compact ({size}) is ready: save it with the link below. {message}"
        return status, gr.update(value=str(path), visible=True)

    def published(self) -> list[PublishedStyle]:
        """JoJoGAN's published styles, each with its title, size and whether it is downloaded or a pack here."""
        folders = self.runtime.folders.search_dirs("styles")
        downloaded = {name for name in self.catalog if weights.locate(name, folders) is not None}
        return published_styles(self.catalog, downloaded, {info.name for info in self.runtime.packs.list()})

    def published_styles(self) -> list[str]:
        """The published styles' dropdown labels: human title and file name."""
        return [style.label for style in self.published()]

    def published_table(self) -> str:
        """The published styles as a small table (title, file, size, downloaded or a pack)."""
        return gallery_html(self.published())

    @shows_errors(outputs=1 + LIBRARY_OUTPUTS)
    def fetch(self, entry_name: str | None) -> Iterator[tuple[Any, ...]]:
        """Download a published JoJoGAN style (or use the copy already in the styles folder) and import it."""
        style = resolve(self.published(), entry_name)
        if style is None:
            raise JojoganError("Choose one of the published styles to download.")
        entry = style.entry
        name = Path(entry.name).stem
        self.runtime.packs.new_path(name)  # refuse a taken name before downloading 130 MB
        progress: dict[str, Any] = {"done": 0, "total": entry.size}
        outcome: dict[str, Any] = {}

        def on_progress(_: str, done: int, total: int | None) -> None:
            progress.update(done=done, total=total)

        def work() -> None:
            try:
                found = weights.require(
                    [entry],
                    self.runtime.folders,
                    allow_download=True,
                    on_progress=on_progress,
                    progress=False,
                    catalog=self.catalog,
                )
                outcome["path"] = found[entry.name]
            except (JojoganError, *WORK_FAILURES) as error:
                outcome["error"] = error

        worker = threading.Thread(target=work, name="jojogan-fetch", daemon=True)
        worker.start()
        while worker.is_alive():
            done, total = weights.human_size(progress["done"]), weights.human_size(progress["total"])
            yield (f"Downloading {entry.name}: {done} of {total}…", *self.no_library_change())
            worker.join(self.poll_seconds / 2)
        if "error" in outcome:
            raise outcome["error"]
        yield (f"Importing {entry.name}…", *self.no_library_change())
        with self.exclusive():
            path = self.runtime.import_pack(outcome["path"], name)
        message = f"Imported {entry.name} as style pack '{path.stem}'. {NEW_PACK_NEXT}"
        yield (message, *self.library(path.stem, restyle_with_it=True))


def build_packs_tab(handlers: PackHandlers) -> dict[str, Any]:
    """Packs: gallery and the selected pack's card, its editable details, import, rename, delete, download and
    the published styles."""
    gallery_items, names, _, _ = handlers.library()
    first = names[0] if names else None
    _, card_html, *details = handlers.show(first)
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            selected = gr.Dropdown(choices=names, value=first, label="Selected pack", elem_id="jojogan_selected_pack")
            gallery = lossless(
                gr.Gallery,
                value=gallery_items,
                label="Style packs",
                columns=3,
                allow_preview=False,
                object_fit="contain",
                elem_id="jojogan_pack_gallery",
            )
            refresh = gr.Button("Refresh the packs", elem_id="jojogan_packs_refresh")
        with gr.Column(scale=2, min_width=320):
            status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="jojogan_packs_status")
            card = gr.HTML(value=card_html, elem_id="jojogan_pack_card")
            try_on = build_try_on_section(opened=bool(names))
            with gr.Accordion("Edit the details", open=False, elem_id="jojogan_pack_details"):
                edits = [
                    gr.Textbox(value=value, label=DETAIL_LABELS[key], lines=lines, elem_id=f"jojogan_pack_{key}")
                    for (key, lines), value in zip(DETAIL_LINES.items(), details, strict=True)
                ]
                save = gr.Button("Save the details", elem_id="jojogan_pack_save_details")
            with gr.Row():
                download = gr.Button("Download", elem_id="jojogan_pack_download")
                download_compact = gr.Button("Download compact", elem_id="jojogan_pack_download_compact")
                delete = gr.Button("Delete", variant="stop", elem_id="jojogan_pack_delete")
            file = gr.File(label="Pack file", interactive=False, visible=False, elem_id="jojogan_pack_file")
            with gr.Row():
                new_name = gr.Textbox(label="New name", elem_id="jojogan_pack_new_name", scale=3)
                rename = gr.Button("Rename", elem_id="jojogan_pack_rename", scale=1)
            compose = build_compose_section(handlers)
            with gr.Accordion("Import a style pack or a JoJoGAN .pt", open=False):
                upload = gr.File(
                    label="Style pack (.safetensors) or JoJoGAN style (.pt)",
                    file_types=[".safetensors", ".pt", ".pth"],
                    elem_id="jojogan_import_file",
                )
                import_name = gr.Textbox(label="Name (empty = file name)", elem_id="jojogan_import_name")
                overwrite = gr.Checkbox(value=False, label="Replace a pack of the same name")
                import_compact = gr.Checkbox(
                    value=False,
                    label="Save a JoJoGAN .pt compact (its difference from the base model, quality measured)",
                    elem_id="jojogan_import_compact",
                )
                import_button = gr.Button("Import", elem_id="jojogan_import")
            with gr.Accordion("Published JoJoGAN styles", open=False):
                styles = handlers.published_styles()
                published = gr.Dropdown(
                    choices=styles,
                    value=styles[0] if styles else None,
                    label="Style",
                    info="JoJoGAN's pretrained styles (about 133 MB each), downloaded and imported as style packs.",
                    elem_id="jojogan_published_style",
                )
                published_table = gr.HTML(value=handlers.published_table(), elem_id="jojogan_published_table")
                fetch = gr.Button("Download and import", elem_id="jojogan_fetch")
    names_state = gr.State(names)
    return {
        "gallery": gallery,
        "names": names_state,
        "refresh": refresh,
        "status": status,
        "selected": selected,
        "card": card,
        "details": edits,
        "save": save,
        "download": download,
        "download_compact": download_compact,
        "delete": delete,
        "file": file,
        "new_name": new_name,
        "rename": rename,
        "upload": upload,
        "import_name": import_name,
        "overwrite": overwrite,
        "import_compact": import_compact,
        "import": import_button,
        "published": published,
        "published_table": published_table,
        "fetch": fetch,
        "try_on": try_on,
        "compose": compose,
    }
