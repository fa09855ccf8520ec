"""Packs that appear and vanish while they are listed, read, downloaded or deleted: 200 or 404, never a 500."""

import threading
import time

import pytest

from jojogan_ext.errors import MissingPackError
from jojogan_ext.files import atomic_write_bytes

from .conftest import api_url


@pytest.fixture()
def flicker(runtime):
    """A thread that keeps adding and deleting the pack 'flicker' (a copy of 'keep', with its preview)."""
    data = runtime.packs.existing("keep").read_bytes()
    path = runtime.packs.folder / "flicker.safetensors"
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            atomic_write_bytes(path, data)  # as every writer of the folder does: complete or absent
            path.unlink(missing_ok=True)

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    yield data
    stop.set()
    thread.join()


def test_listing_reading_and_downloading_race_deletes(runtime, client, flicker):
    statuses: dict[str, set[int]] = {"list": set(), "get": set(), "file": set(), "delete": set()}
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        listing = client.get(api_url("packs"))
        statuses["list"].add(listing.status_code)
        assert listing.json()["problems"] == [], listing.json()["problems"]  # a vanished file is no problem
        for route, method in (("get", "packs/flicker"), ("file", "packs/flicker/file"), ("delete", "packs/flicker")):
            answer = client.request("DELETE" if route == "delete" else "GET", api_url(method))
            statuses[route].add(answer.status_code)
            if answer.status_code == 404:
                assert "no style pack named 'flicker'" in answer.json()["detail"]
            elif route == "file":
                assert answer.content == flicker  # whole, even when deleted while streaming
    assert statuses["list"] == {200}
    assert statuses["get"] <= {200, 404} and statuses["file"] <= {200, 404} and statuses["delete"] <= {200, 404}


def test_a_pack_deleted_after_listing_is_still_shown_and_then_missing(runtime):
    (info,) = runtime.packs.list()
    runtime.packs.delete("keep")
    assert info.size_bytes > 0  # recorded while listing
    for vanished in (runtime.packs.info, runtime.packs.load, runtime.packs.delete, runtime.pack_generator):
        with pytest.raises(MissingPackError, match="no style pack named 'keep'"):
            vanished("keep")
