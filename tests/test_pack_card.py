"""The Packs tab's card (escaped HTML from a pack's metadata) and editing a pack's details in place."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import save_file

from jojogan_ext import packs
from jojogan_ext.args import CompactArgs
from jojogan_ext.errors import PackError
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.pack_card import EMPTY_HINT, duration_text, pack_card_html
from jojogan_ext.packs import THUMBNAIL_KEY, load_pack, read_pack_metadata, save_pack, update_pack_details
from jojogan_ext.ui import TabHandlers
from jojogan_ext.weights import human_size

from tiny_models import save_styled_pack, styled_generator

TRAINING = {
    "references": 16,
    "iterations": 300,
    "strength": 0.75,
    "preserve_color": True,
    "loss": "discriminator",
    "identity_weight": 0.0,
    "lr": 0.002,
    "seed": 7,
    "time": 125.3,
    "device": "cuda:0",
    "final_loss": 0.123456,
}


@pytest.fixture()
def handlers(tiny_runtime):
    return TabHandlers(tiny_runtime, TrainingJobs(tiny_runtime))


def trained_pack(runtime, name: str = "inked", **metadata: str) -> Path:
    """A pack as training writes it: training facts, a preview beside it and a thumbnail inside."""
    base = runtime.base.generator
    facts = {"jojogan.training": json.dumps(TRAINING), "modelspec.date": "2026-12-07T21:30:05+00:00"} | metadata
    return save_pack(
        runtime.packs.new_path(name),
        styled_generator(base),
        base=base,
        title="Inked portraits",
        metadata=facts,
        preview=Image.new("RGB", (64, 64), (200, 30, 30)),
    )


def visible_text(html: str) -> str:
    """The card's text without tags and without the raw metadata section."""
    shown = html.split("<details", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", shown))


def tensor_bytes(path: Path) -> bytes:
    """Everything after a safetensors header: the tensor data buffer."""
    data = path.read_bytes()
    return data[8 + int.from_bytes(data[:8], "little") :]


def test_card_shows_the_details_and_training_facts_with_units(handlers):
    path = trained_pack(handlers.runtime, **{"modelspec.author": "Ada", "modelspec.description": "Bold ink lines."})
    status, html, title, author, description, licence = handlers.show("inked")
    text = visible_text(html)
    fingerprint = handlers.runtime.base_fingerprint
    for expected in [
        "Inked portraits",
        "inked",  # the file's name under the title
        "Bold ink lines.",
        "Author Ada",
        "Licence NVIDIA Source Code License-NC",
        f"Base model stylegan2-ffhq-config-f (sha256 {fingerprint[:12]}…)",
        "Created 2026-12-07 21:30 UTC",
        f"File inked.safetensors ({human_size(path.stat().st_size)})",
        "References 16",
        "Iterations 300",
        "Strength 0.75",
        "Loss discriminator",
        "Preserve colours yes",
        "Identity weight 0",
        "Seed 7",
        "Duration 2 min 5 s",
        "Device cuda:0",
        "Final loss 0.1235",
    ]:
        assert expected in text, expected
    assert fingerprint not in text  # the full hash only in the raw metadata, which starts closed
    raw = html.split("<details", 1)[1]
    assert "<details open" not in html and fingerprint in raw and "white-space:pre-wrap" in raw
    assert THUMBNAIL_KEY not in raw
    assert '<img src="data:image/png;base64,' in html  # the preview beside the pack
    assert (title, author, description) == ("Inked portraits", "Ada", "Bold ink lines.")
    assert licence.startswith("NVIDIA") and status == handlers.show("inked")[0]


def test_the_card_shows_how_a_pack_is_stored_and_its_measured_quality(handlers):
    runtime = handlers.runtime
    trained_pack(runtime)
    assert "Stored as full weights" in visible_text(handlers.show("inked")[1])
    path, _ = runtime.save_compact("inked", "small", budget=CompactArgs(latents=2))
    record = json.loads(load_pack(path).metadata["jojogan.compression"])
    text = visible_text(handlers.show("small")[1])
    assert f"File small.safetensors ({human_size(path.stat().st_size)})" in text
    assert "Stored as compact: the difference from the base model (" in text
    assert f"; {human_size(record['full_bytes'])} in full" in text
    measured = record["measured"]
    assert f"Measured quality PSNR {measured['psnr']:.4g} dB, largest error {measured['max_error']} levels" in text
    assert "(budget: ≥ 40 dB, ≤ 1 %), against the full weights on 2 faces" in text


def test_a_hand_placed_pack_without_preview_or_optional_metadata(handlers):
    folder = handlers.runtime.packs.folder
    synthesis = handlers.runtime.base.generator.synthesis_parameters()
    tensors = {key: value.detach().clone().contiguous() for key, value in synthesis.items()}
    save_file(tensors, str(folder / "bare.safetensors"), metadata={"jojogan.format_version": "1"})
    _, html, title, author, description, licence = handlers.show("bare")
    text = visible_text(html)
    assert "No preview" in html and "<img" not in html
    assert "How it was trained" not in html and "Author" not in text and "Base model" not in text
    assert "bare" in text and "File bare.safetensors" in text
    assert (title, author, description, licence) == ("", "", "", "")


def test_every_metadata_value_is_escaped():
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    metadata = {
        "modelspec.title": hostile,
        "modelspec.author": hostile,
        "modelspec.description": hostile,
        "jojogan.training": json.dumps({"device": hostile, "loss": hostile}),
        "jojogan.base": json.dumps({"name": hostile, "sha256": hostile}),
        "jojogan.source": hostile,
    }
    html = pack_card_html(hostile, metadata, file_name=hostile, file_size=10, preview_uri=None)
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html


def test_units_of_the_duration():
    assert [duration_text(value) for value in (2, 2.34, 59.6, 125.3, 3725, None, "2")] == [
        "2 s",
        "2.3 s",
        "1 min 0 s",
        "2 min 5 s",
        "1 h 2 min",
        "",
        "",
    ]


def test_no_packs_shows_how_to_get_one(handlers):
    _, html, *details = handlers.show(None)
    assert EMPTY_HINT.split(".")[0] in html and "Train tab" in html and ".pt" in html and "published" in html
    assert details == ["", "", "", ""]


def test_editing_the_details_keeps_the_tensors_byte_identical(handlers):
    path = trained_pack(handlers.runtime)
    before_tensors, before_metadata = tensor_bytes(path), read_pack_metadata(path)
    before_sha = hashlib.sha256(before_tensors).hexdigest()

    status, html, *library = handlers.save_details(
        "inked", "Ink & <b>gold</b>", "Bo", "Two lines\nof text", "CC-BY-4.0"
    )
    assert status == "Saved the details of 'inked'; the pack's weights are unchanged."
    assert hashlib.sha256(tensor_bytes(path)).hexdigest() == before_sha
    after = read_pack_metadata(path)
    assert after["modelspec.title"] == "Ink & <b>gold</b>" and after["modelspec.license"] == "CC-BY-4.0"
    assert after["modelspec.description"] == "Two lines\nof text" and after["modelspec.author"] == "Bo"
    untouched = {key: value for key, value in before_metadata.items() if key not in packs.DETAIL_KEYS.values()}
    assert {key: after[key] for key in untouched} == untouched  # thumbnail, training facts, base…
    assert "Ink &amp; &lt;b&gt;gold&lt;/b&gt;" in html
    assert [caption for _, caption in library[0]] == ["Ink & <b>gold</b> (inked)"]  # the gallery shows the title
    reloaded = load_pack(path)  # the file still loads and fits the base
    reloaded.check_fits(handlers.runtime.base.generator, handlers.runtime.base_fingerprint)
    assert not [item.name for item in path.parent.iterdir() if item.name.startswith(".")]  # no temp file left


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"title": "x" * 201}, "title"),
        ({"description": "y" * 4001}, "description"),
        ({"author": 5}, "author: must be text"),
        ({"license": None}, "license: must be text"),
        ({"thumbnail": "data:"}, "thumbnail"),
    ],
)
def test_editing_refuses_oversized_or_non_text_values(tiny_runtime, changes, expected):
    path = trained_pack(tiny_runtime)
    before = path.read_bytes()
    with pytest.raises(PackError) as refused:
        update_pack_details(path, changes)
    message = str(refused.value)
    assert message.startswith("The details of 'inked' were not saved: ") and expected in message
    assert "\n" not in message
    assert path.read_bytes() == before


def test_a_failed_edit_leaves_the_pack_as_it_was(tiny_runtime, monkeypatch):
    path = trained_pack(tiny_runtime)
    before = path.read_bytes()

    def disk_full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", disk_full)
    with pytest.raises(OSError):
        update_pack_details(path, {"title": "new"})
    assert path.read_bytes() == before
    assert sorted(item.name for item in path.parent.iterdir()) == ["inked.preview.png", "inked.safetensors"]


def test_the_handler_refuses_without_a_pack_and_names_the_problem(handlers):
    save_styled_pack(handlers.runtime)
    assert handlers.save_details(None, "t", "", "", "")[0] == "⚠️ Select a style pack first, then edit its details."
    status = handlers.save_details("bold", "t" * 500, "", "", "")[0]
    assert status.startswith("⚠️ The details of 'bold' were not saved: title")
    assert read_pack_metadata(handlers.runtime.packs.existing("bold"))["modelspec.title"] == "Bold"
