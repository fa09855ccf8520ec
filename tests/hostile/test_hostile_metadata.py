"""Pack metadata that is too large or contradicts the tensors: refused on import and load, listed as a problem
(never served whole) in the library, the REST API and the UI.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from jojogan_ext.errors import PackError
from jojogan_ext.packs import (
    MAX_METADATA_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_VALUE_BYTES,
    MAX_THUMBNAIL_URI_BYTES,
    THUMBNAIL_KEY,
    load_pack,
    read_pack_metadata,
)

from .conftest import api_url, assert_api_refused, assert_ui_refused


@pytest.fixture()
def keep(runtime):
    """The library's valid pack: its tensors and metadata, to write variants from."""
    path = runtime.packs.existing("keep")
    return load_file(str(path)), read_pack_metadata(path)


def place(runtime, name: str, tensors: dict, metadata: dict) -> str:
    """Put a pack file into the packs folder by hand (as a user copying files does)."""
    save_file(tensors, str(runtime.packs.folder / f"{name}.safetensors"), metadata)
    return name


def test_a_pack_with_megabytes_of_metadata_is_a_problem_not_a_listing(runtime, client, handlers, keep):
    tensors, metadata = keep
    bulky = metadata | {f"note.{n}": "x" * 300 for n in range(16_000)}  # ~5 MB, as the pack
    name = place(runtime, "bulky", tensors, bulky)
    listing = client.get(api_url("packs"))
    assert len(listing.content) < 20_000, len(listing.content)
    assert [pack["name"] for pack in listing.json()["packs"]] == ["keep"]
    assert any(problem.startswith("bulky.safetensors") for problem in listing.json()["problems"])
    detail = client.get(api_url(f"packs/{name}"))
    assert_api_refused(detail, 422, "bulky.safetensors", "limit")
    assert len(detail.content) < 1000
    status, *_ = handlers.refresh()
    assert "Skipped: bulky.safetensors" in status and len(status) < 2000
    assert_ui_refused(handlers.show(name)[0], "bulky.safetensors")
    with pytest.raises(PackError, match=r"bulky\.safetensors"):
        runtime.pack_generator(name)


def test_metadata_caps(runtime, keep):
    tensors, metadata = keep
    cases = {
        "entries": metadata | {f"n{i}": "" for i in range(MAX_METADATA_ENTRIES)},
        "value": metadata | {"modelspec.description": "d" * MAX_METADATA_VALUE_BYTES},
        "total": metadata | {f"part{i}": "t" * (MAX_METADATA_VALUE_BYTES - 10) for i in range(9)},
        "thumbnail": metadata | {THUMBNAIL_KEY: "data:image/png;base64," + "A" * MAX_THUMBNAIL_URI_BYTES},
    }
    for name, values in cases.items():
        with pytest.raises(PackError, match=rf"{name}\.safetensors"):
            read_pack_metadata(runtime.packs.folder / f"{place(runtime, name, tensors, values)}.safetensors")
        with pytest.raises(PackError, match=rf"{name}\.safetensors"):
            runtime.import_pack(runtime.packs.folder / f"{name}.safetensors", f"copy_of_{name}")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, MAX_METADATA_VALUE_BYTES + 64), max_size=12))
def test_metadata_of_any_size_is_accepted_exactly_within_the_caps(runtime, keep, sizes):
    tensors, metadata = keep
    extra = {f"x{i}": "m" * size for i, size in enumerate(sizes)}
    name = place(runtime, "sized", tensors, metadata | extra)
    entries = {key: value for key, value in (metadata | extra).items() if key != THUMBNAIL_KEY}
    within = (
        all(len(key) + len(value) <= MAX_METADATA_VALUE_BYTES for key, value in entries.items())
        and sum(len(key) + len(value) for key, value in entries.items()) <= MAX_METADATA_BYTES
    )
    listed = [info.name for info in runtime.packs.list()]
    assert (name in listed) == within
    assert (name in " ".join(runtime.packs.problems())) != within


def test_a_config_that_contradicts_the_tensors_is_refused(runtime, client, keep, tmp_path):
    tensors, metadata = keep
    config = json.loads(metadata["jojogan.config"])
    for key, wrong in [("size", 1024), ("style_dim", config["style_dim"] * 2), ("channels", {"4": 7})]:
        name = place(
            runtime, f"claims_{key}", tensors, metadata | {"jojogan.config": json.dumps(config | {key: wrong})}
        )
        path = runtime.packs.folder / f"{name}.safetensors"
        for attempt in (read_pack_metadata, load_pack, lambda p: runtime.import_pack(p, "copied")):
            with pytest.raises(PackError, match=rf"{name}\.safetensors declares {key}"):
                attempt(path)
        assert_api_refused(client.get(api_url(f"packs/{name}")), 422, "jojogan.config")
        path.unlink()
    place(runtime, "not_json", tensors, metadata | {"jojogan.config": "{size: 1024"})
    with pytest.raises(PackError, match="not a JSON object"):
        runtime.pack_generator("not_json")
