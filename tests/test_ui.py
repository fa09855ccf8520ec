"""The gradio UI on gradio 3.41: the tab and the accordion controls build, and the handlers work on real inputs."""

import dataclasses
import hashlib
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from jojogan_ext import style_gallery, weights
from jojogan_ext.args import TrainArgs, field_info, parse
from jojogan_ext.errors import JojoganError
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.nn.stylegan2 import Generator
from jojogan_ext.packs import load_pack
from jojogan_ext.ui import TRAIN_FIELDS, TabHandlers, build_tab, failure_message, train_values

from tiny_models import save_styled_pack


@pytest.fixture()
def handlers(tiny_runtime):
    jobs = TrainingJobs(tiny_runtime)
    yield TabHandlers(tiny_runtime, jobs, poll_seconds=0.05)
    current = jobs.current()
    if current is not None and current.active:
        jobs.cancel(current.id)
        jobs.wait(current.id, timeout=60)


@pytest.fixture()
def reference(fixtures) -> str:
    return str(fixtures / "align" / "A_full_256.png")


def defaults(**values) -> list:
    """Train tab values in TRAIN_FIELDS order: the defaults for aligned references, with `values` changed."""
    chosen = {name: field_info(TrainArgs, name)["default"] for name in TRAIN_FIELDS}
    chosen |= {"seed": -1, "references_are_aligned": True} | values
    return [chosen[name] for name in TRAIN_FIELDS]


def choice_values(choices: list) -> list:
    """A dropdown's choices as values: gradio 4 lists (label, value) pairs, gradio 3 plain values."""
    return [choice[1] if isinstance(choice, list | tuple) else choice for choice in choices]


def components(blocks: gr.Blocks) -> dict[str, dict]:
    return {c["props"].get("elem_id"): c for c in blocks.config["components"] if c["props"].get("elem_id")}


def test_the_tab_builds_with_controls_from_the_argument_models(tiny_runtime):
    save_styled_pack(tiny_runtime)
    blocks = build_tab(tiny_runtime, TrainingJobs(tiny_runtime))
    assert isinstance(blocks, gr.Blocks)
    found = components(blocks)
    for elem_id in ["jojogan_references", "jojogan_train", "jojogan_cancel", "jojogan_restyle_button"]:
        assert elem_id in found
    iterations = found["jojogan_iterations"]["props"]
    info = field_info(TrainArgs, "iterations")
    assert (iterations["minimum"], iterations["maximum"], iterations["value"]) == (
        info["minimum"],
        info["maximum"],
        info["default"],
    )
    assert choice_values(found["jojogan_restyle_pack"]["props"]["choices"]) == ["bold"]
    assert found["jojogan_selected_pack"]["props"]["value"] == "bold"


def test_train_values_give_whole_numbers():
    assert parse(TrainArgs, train_values(defaults(iterations=5.0, seed=-1))).iterations == 5


def test_prepare_shows_aligned_references_and_their_inversions(handlers, reference, fixtures):
    upload_gradio3 = SimpleNamespace(name=reference)  # gradio 3 hands temp-file objects over, gradio 4 paths
    test_face = Image.open(fixtures / "align" / "A_full_256.png")
    message, items = handlers.prepare([upload_gradio3, reference], test_face, True)
    assert message.startswith("Prepared 2 references")
    captions = ["#1 aligned", "#1 inverted", "#2 aligned", "#2 inverted", "test aligned", "test inverted"]
    assert [caption for _, caption in items] == captions
    size = handlers.runtime.base.generator.size
    assert [image.size for image, _ in items[:2]] == [(handlers.runtime.align_size,) * 2, (size, size)]


def test_train_follows_the_job_and_refreshes_the_packs(handlers, reference):
    updates = list(handlers.train([reference], None, False, *defaults(name="ui style", iterations=2, seed=1)))
    assert len(updates) >= 2 and all(len(update) == 6 for update in updates)
    status, preview, gallery, names, selected, restyle_pack = updates[-1]
    assert status.startswith("Saved style pack 'ui style'. Compact: ")  # saved compact by default, and says how
    assert status.endswith(". It is chosen in the Restyle tab: upload a picture there to try it.")
    assert isinstance(preview, Image.Image) and names == ["ui style"]
    assert selected["value"] == "ui style" and restyle_pack == gr.update(choices=["ui style"], value="ui style")
    assert [caption for _, caption in gallery] == ["ui style"]
    assert handlers.runtime.packs.existing("ui style").is_file()


def test_train_cancel_and_errors_are_shown(handlers, reference, tmp_path):
    assert handlers.cancel() == "No training is running."
    long_run = handlers.train([reference], None, False, *defaults(name="long", iterations=2000))
    first = next(long_run)
    assert "long" in first[0] or "Aligning" in first[0]
    assert handlers.cancel().startswith("Cancelling 'long'")
    last = list(long_run)[-1]
    assert last[0].startswith("⚠️") and "cancelled" in last[0]
    assert last[1] == gr.update()  # the last live preview stays on screen
    assert not handlers.runtime.packs.path_for("long").exists()

    text_file = tmp_path / "notes.png"
    text_file.write_text("not an image")
    for files, values, expected in [
        (None, defaults(), "Upload at least one reference"),
        ([str(text_file)], defaults(), "not an image"),
        ([reference], defaults(iterations=0), "iterations"),
    ]:
        status = list(handlers.train(files, None, False, *values))[-1][0]
        assert status.startswith("⚠️") and expected in status, status
    assert handlers.prepare([str(text_file)], None, True)[0].startswith("⚠️")


def test_restyle_handler(handlers, fixtures):
    save_styled_pack(handlers.runtime)
    image = Image.open(fixtures / "align" / "astronaut.png")
    options = [1.0, "", 1, 0.05, 8, 0.15, False]  # strength, faces, max faces, confidence, min size, feather, colour
    message, result, crops = handlers.restyle(image, "bold", *options)
    assert message == "Restyled 1 face with 'bold'." and result.size == image.size
    assert [caption for _, caption in crops] == ["face 0: aligned", "face 0: restyled"]
    changed = np.abs(np.asarray(result, dtype=np.int16) - np.asarray(image.convert("RGB"), dtype=np.int16)).max(axis=2)
    assert changed.max() > 10 and (changed > 0).mean() < 0.5  # the face was repainted, the rest kept
    for picture, pack, expected in [
        (None, "bold", "Upload an image"),
        (image, None, "Choose a style pack"),
        (image, "missing", "no style pack named 'missing'"),
    ]:
        status, result, crops = handlers.restyle(picture, pack, *options)
        assert status.startswith("⚠️") and expected in status and (result, crops) == (None, [])


def test_pack_management(handlers, tmp_path):
    runtime = handlers.runtime
    source = save_styled_pack(runtime, "original")
    upload = tmp_path / "shared.safetensors"
    upload.write_bytes(source.read_bytes())

    status, gallery, names, selected, _ = handlers.import_file(str(upload), "", False)
    assert status.startswith(
        "Imported shared.safetensors as style pack 'shared'. It is chosen in the Restyle tab"
    ) and names == ["original", "shared"]
    assert selected["value"] == "shared" and len(gallery) == 2
    assert handlers.import_file(str(upload), "", False)[0].startswith("⚠️ A style pack named 'shared' already exists")

    clicked = handlers.select(names, gr.SelectData(None, {"index": 1, "value": None}))  # a gallery click
    assert clicked == gr.update(value="shared")
    assert handlers.select(names, gr.SelectData(None, {"index": 7, "value": None})) == gr.update()
    _, card, title, *_ = handlers.show("shared")
    assert title == "Original" and "shared.safetensors" in card  # the card of the selected pack

    status, file = handlers.download("shared")
    assert status == "'shared' is ready: save it with the link below." and file["visible"] is True
    assert Path(file["value"]).read_bytes() == source.read_bytes() and Path(file["value"]).name == "shared.safetensors"
    status, file = handlers.download_compact("shared")
    assert status.startswith("'shared' compact (") and "Compact: " in status and file["visible"] is True
    compact = Path(file["value"])
    assert compact.name == "shared.safetensors" and compact.stat().st_size < source.stat().st_size
    assert (
        load_pack(compact).is_compact
        and (runtime.packs.folder / "shared.safetensors").read_bytes() == source.read_bytes()
    )

    assert handlers.rename("shared", "renamed")[0] == "Renamed 'shared' to 'renamed'."
    assert handlers.rename("renamed", "original")[0].startswith("⚠️")  # taken
    status, _, names, _, _ = handlers.delete("renamed")
    assert status == "Deleted style pack 'renamed'." and names == ["original"]
    assert handlers.show("renamed")[0].startswith("⚠️")
    assert handlers.refresh()[0] == "1 style pack."
    (runtime.packs.folder / "junk.safetensors").write_bytes(b"junk")
    assert "Skipped: junk.safetensors" in handlers.refresh()[0]
    handlers.delete("original")
    assert handlers.refresh()[0].startswith("No style packs yet: train one, import one or download")


def published_style(tmp_path: Path, runtime, url: str | None = None) -> weights.WeightFile:
    """A catalog entry for a real JoJoGAN-style .pt served from a file:// URL (or from `url`)."""
    source = tmp_path / "served" / "tiny_style.pt"
    source.parent.mkdir()
    base = runtime.base.generator
    torch.save({"g": Generator.from_state_dict(base.state_dict()).state_dict()}, source)
    data = source.read_bytes()
    return weights.WeightFile(
        name="tiny_style.pt",
        url=url or source.as_uri(),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        kind="styles",
        description="a tiny JoJoGAN style",
        license="test",
    )


def test_fetch_a_published_style_downloads_and_imports_it(handlers, tmp_path):
    entry = published_style(tmp_path, handlers.runtime)
    handlers.catalog = {entry.name: entry}
    assert handlers.published_styles() == ["tiny_style.pt"]
    updates = list(handlers.fetch("tiny_style.pt"))
    assert updates[-1][0].startswith("Imported tiny_style.pt as style pack 'tiny_style'. It is chosen")
    assert updates[-1][2] == ["tiny_style"]
    assert (handlers.runtime.packs.folder / "tiny_style.pt").stat().st_size == entry.size
    assert (handlers.runtime.packs.folder / "tiny_style.preview.png").is_file()


def test_fetch_offline_shows_the_missing_weights_sentence(handlers, tmp_path):
    entry = published_style(tmp_path, handlers.runtime, url="http://127.0.0.1:9/tiny_style.pt")  # nothing listens
    handlers.catalog = {entry.name: entry}
    status = list(handlers.fetch("tiny_style.pt"))[-1][0]
    assert status.startswith("⚠️") and "tiny_style.pt" in status and "could not be downloaded" in status
    assert str(handlers.runtime.packs.folder) in status  # where to put it by hand
    assert list(handlers.fetch("unknown.pt"))[-1][0].startswith("⚠️ Choose one of the published styles")


def test_labels_say_one_rule_and_hints_sit_under_checkboxes(tiny_runtime):
    found = components(build_tab(tiny_runtime, TrainingJobs(tiny_runtime)))
    seed = found["jojogan_seed"]["props"]
    assert (seed["label"], seed["value"]) == ("Seed", "") and seed["info"] == "Random seed; empty = random."
    for elem_id in ("jojogan_preserve_color", "jojogan_references_are_aligned", "jojogan_restyle_color_match"):
        assert "jojogan-checkbox" in found[elem_id]["props"]["elem_classes"]  # style.css moves the hint below
    assert "tool" in found["jojogan_restyle_pack_refresh"]["props"]["elem_classes"]  # the host's small button
    for typed, expected in [("", None), ("  ", None), ("42", 42), (" 7 ", 7), ("-1", None), (None, None), (5.0, 5)]:
        assert parse(TrainArgs, train_values(defaults(seed=typed))).seed == expected
    with pytest.raises(JojoganError, match="The seed must be a whole number"):
        train_values(defaults(seed="abc"))


def test_an_unexpected_failure_says_what_to_do_without_exception_names():
    message = failure_message(RuntimeError("CUDA out of memory.\nTraceback (most recent call last): ..."))
    assert message == (
        "⚠️ Something went wrong: CUDA out of memory. Try again; if it keeps failing, report it with the details "
        "from the console."
    )
    assert "RuntimeError" not in message


def test_the_published_styles_show_titles_sizes_and_what_is_here(handlers, tmp_path):
    entry = published_style(tmp_path, handlers.runtime)
    entry = dataclasses.replace(entry, description=f"{weights.JOJOGAN_STYLE_NOTE}: Tiny test style")
    handlers.catalog = {entry.name: entry}
    label = "Tiny test style (tiny_style.pt)"
    assert handlers.published_styles() == [label]
    table = handlers.published_table()
    assert "Tiny test style" in table and weights.human_size(entry.size) in table and "not downloaded" in table
    assert list(handlers.fetch(label))[-1][0].startswith("Imported tiny_style.pt as style pack 'tiny_style'.")
    assert "style pack &#x27;tiny_style&#x27;" in handlers.published_table()
    (handlers.runtime.packs.folder / "tiny_style.safetensors").unlink()
    assert "downloaded, not imported yet" in handlers.published_table()


def test_the_real_catalog_has_human_titles():
    styles = {style.entry.name: style for style in style_gallery.published_styles(weights.CATALOG, set(), set())}
    assert styles["jojo_preserve_color.pt"].label == "JoJo, colours kept (jojo_preserve_color.pt)"
    assert all(": " not in style.title and style.title for style in styles.values())
    assert style_gallery.resolve(styles.values(), "jojo_preserve_color.pt").title == "JoJo, colours kept"
