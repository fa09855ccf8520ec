"""The standalone app served on 127.0.0.1: the REST API over HTTP and the UI through gradio_client."""

import httpx
import pytest
from gradio_client import Client
from PIL import Image

from jojogan_ext import __version__
from jojogan_ext.api import API_PREFIX
from jojogan_ext.app import create_app

from app_server import served
from tiny_models import save_styled_pack

try:
    from gradio_client import handle_file  # gradio_client 1.x (gradio 4) wants files marked as such
except ImportError:  # gradio_client 0.5 (gradio 3) takes plain paths

    def handle_file(path: str) -> str:
        return path


@pytest.fixture()
def app_url(tiny_runtime):
    """The app over the tiny runtime, with a pack 'bold', served until the test ends."""
    save_styled_pack(tiny_runtime)
    with served(create_app(tiny_runtime)) as url:
        yield url


def test_the_api_and_the_ui_are_served_side_by_side(app_url):
    version = httpx.get(f"{app_url.rstrip('/')}{API_PREFIX}/version", timeout=30)
    assert version.status_code == 200 and version.json()["version"] == __version__
    packs = httpx.get(f"{app_url.rstrip('/')}{API_PREFIX}/packs", timeout=30).json()
    assert [pack["name"] for pack in packs["packs"]] == ["bold"]
    page = httpx.get(app_url, timeout=30)
    assert page.status_code == 200 and '"title":"JoJoGAN"' in page.text  # gradio's page config
    ids = {c["props"].get("elem_id") for c in httpx.get(f"{app_url}config", timeout=30).json()["components"]}
    assert {"jojogan_train", "jojogan_restyle_button", "jojogan_pack_gallery"} <= ids


def test_gradio_client_lists_packs_and_restyles(app_url, fixtures):
    client = Client(app_url, verbose=False)
    status, _, selected, _ = client.predict("bold", api_name="/jojogan_packs")
    assert status == "1 style pack." and selected["value"] == "bold"

    image = str(fixtures / "align" / "astronaut.png")
    options = [
        "bold",
        1.0,
        "",
        1,
        0.05,
        8,
        0.15,
        False,
        "",
        "off",
        "base",
    ]  # pack, strength, faces, max, confidence, size, feather, colour, face packs, swap resolution, swap into
    status, result, _ = client.predict(handle_file(image), *options, api_name="/jojogan_restyle")
    assert status == "Restyled 1 face with 'bold'."
    assert Image.open(result).size == Image.open(image).size

    status, result, _ = client.predict(handle_file(image), "missing", *options[1:], api_name="/jojogan_restyle")
    assert status.startswith("⚠️") and "no style pack named 'missing'" in status and result is None
