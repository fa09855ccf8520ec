"""Headless Chromium drives the standalone app: prepare and train a style (2 iterations), then restyle with it.

Needs Debian's `chromium` and the `playwright` package (driving that browser; `playwright install` is never
used); skipped when either is absent. Screenshots also go to /tmp/jojogan_screenshots/ for people to look at.
"""

import os
import shutil
import time
from pathlib import Path

import pytest
from browser_steps import CHROMIUM_ARGS, fill_training_form, wait_for_text

from jojogan_ext.app import create_app
from jojogan_ext.packs import read_pack_metadata

from app_server import served
from tiny_models import save_styled_pack

CHROMIUM = Path(os.environ.get("JOJOGAN_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path("/tmp/jojogan_screenshots")
TIMEOUT_MS = 120_000


@pytest.fixture()
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(exist_ok=True)
    shutil.copyfile(path, SHOTS / name)
    return path


def wait_for_status(page, elem_id: str, text: str, timeout: float = TIMEOUT_MS / 1000) -> str:
    """The status box `elem_id` once it contains `text`."""
    return wait_for_text(page, f"#{elem_id} textarea", text, timeout)


def test_train_a_style_in_the_browser(browser, tiny_runtime, fixtures, tmp_path):
    reference = fixtures / "align" / "A_full_256.png"
    with served(create_app(tiny_runtime)) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url, wait_until="domcontentloaded")

        fill_training_form(page, reference, "browser style", 2)
        page.click("#jojogan_prepare")
        wait_for_status(page, "jojogan_train_status", "Prepared 1 reference")
        page.wait_for_selector("#jojogan_pairs img")
        page.click("#jojogan_train")

        status = wait_for_status(page, "jojogan_train_status", "Saved style pack")
        assert status.startswith("Saved style pack 'browser style'. Compact: ")  # saved compact by default
        assert ". It is chosen in the Restyle tab" in status
        page.wait_for_selector("#jojogan_preview img")
        shot = save_screenshot(page, tmp_path, "train_done.png")

        page.click("button:has-text('Packs')")
        page.wait_for_selector("#jojogan_pack_gallery >> text=browser style")
        save_screenshot(page, tmp_path, "packs.png")

        page.click("button:has-text('Restyle')")  # the new pack is already chosen there
        page.set_input_files("#jojogan_restyle_image input[type=file]", str(fixtures / "align" / "astronaut.png"))
        page.wait_for_selector("#jojogan_restyle_image a[download='astronaut.png']")  # a file upload, not gr.Image
        for elem_id, value in [("jojogan_restyle_confidence", "0.05"), ("jojogan_restyle_max_faces", "1")]:
            page.fill(f"#{elem_id} input[type=number]", value)  # random detector weights: low scores
            page.press(f"#{elem_id} input[type=number]", "Tab")
        page.click("#jojogan_restyle_button")
        assert wait_for_status(page, "jojogan_restyle_status", "Restyled") == "Restyled 1 face with 'browser style'."
        page.wait_for_selector("#jojogan_restyle_result img")
        save_screenshot(page, tmp_path, "restyle.png")

    assert shot.stat().st_size > 10_000
    pack = tiny_runtime.packs.existing("browser style")
    assert pack.is_file() and pack.with_name("browser style.preview.png").is_file()


def page_width(page) -> int:
    """How wide the page scrolls (more than the window: a horizontal scroll bar)."""
    return page.evaluate("document.scrollingElement.scrollWidth")


def card_text(page) -> str:
    return page.inner_text("#jojogan_pack_card")


def wait_for_card(page, text: str, timeout: float = TIMEOUT_MS / 1000) -> str:
    """Poll the pack card from Python until it contains `text`."""
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = card_text(page)
        if text in shown:
            return shown
        time.sleep(0.2)
    raise AssertionError(f"'{text}' did not appear in the pack card within {timeout} s; it says: {shown!r}")


def test_the_packs_tab_shows_cards(browser, tiny_runtime, tmp_path):
    with served(create_app(tiny_runtime)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url, wait_until="domcontentloaded")
        page.click("button:has-text('Packs')")
        wait_for_card(page, "No style packs yet")  # the empty library says how to get a first pack
        save_screenshot(page, tmp_path, "packs_empty.png")

        save_styled_pack(tiny_runtime, "bold")
        save_styled_pack(tiny_runtime, "calm")
        page.reload(wait_until="domcontentloaded")
        page.click("button:has-text('Packs')")
        shown = wait_for_card(page, "Bold")  # the first pack's card, shown on load
        assert "bold.safetensors" in shown and "Base model" in shown
        page.click("#jojogan_pack_card summary")  # the raw metadata (a 64-hex sha256) wraps
        page.wait_for_selector("#jojogan_pack_card details[open]")
        assert page_width(page) <= 1280
        save_screenshot(page, tmp_path, "packs_card.png")

        page.click("#jojogan_pack_details button, #jojogan_pack_details .label-wrap")  # open "Edit the details"
        page.fill("#jojogan_pack_title textarea", "Bold & bright")
        page.click("#jojogan_pack_save_details")
        assert wait_for_status(page, "jojogan_packs_status", "Saved the details").startswith("Saved the details")
        wait_for_card(page, "Bold & bright")

        page.locator("#jojogan_pack_gallery .thumbnail-item").nth(1).click()  # select another pack
        wait_for_card(page, "Calm")
        assert page.input_value("#jojogan_pack_title textarea") == "Calm"
        assert page_width(page) <= 1280
    assert read_pack_metadata(tiny_runtime.packs.existing("bold"))["modelspec.title"] == "Bold & bright"


def test_checkbox_hints_sit_below_and_the_refresh_button_is_small(browser, tiny_runtime):
    with served(create_app(tiny_runtime)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, wait_until="domcontentloaded")
        box = page.locator("#jojogan_preserve_color input[type=checkbox]").bounding_box()
        hint = page.locator("#jojogan_preserve_color").get_by_text("Keep the photo's colours").bounding_box()
        assert hint["y"] > box["y"] + box["height"] / 2  # the hint under the checkbox, not above it
        page.click("button:has-text('Restyle')")
        refresh = page.locator("#jojogan_restyle_pack_refresh").bounding_box()
        assert refresh["width"] <= 48 and refresh["height"] <= 48


def choose(page, elem_id: str, value: str) -> None:
    """Pick a dropdown option as a user does (type to filter, Enter): gradio 3.41 and 4.x alike."""
    field = page.locator(f"#{elem_id} input")
    field.click()
    field.fill(value)
    field.press("Enter")


def test_try_on_and_compose_a_pack_in_the_browser(browser, tiny_runtime, fixtures, tmp_path):
    save_styled_pack(tiny_runtime, "bold")
    save_styled_pack(tiny_runtime, "calm")
    with served(create_app(tiny_runtime)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url, wait_until="domcontentloaded")
        page.click("button:has-text('Restyle')")  # its first face becomes the Packs tab's test face
        page.set_input_files("#jojogan_restyle_image input[type=file]", str(fixtures / "align" / "astronaut.png"))
        page.wait_for_selector("#jojogan_restyle_image a[download='astronaut.png']")
        page.fill("#jojogan_restyle_confidence input[type=number]", "0.05")  # random detector weights: low scores
        page.press("#jojogan_restyle_confidence input[type=number]", "Tab")
        choose(page, "jojogan_restyle_pack", "bold")
        page.click("#jojogan_restyle_button")
        wait_for_status(page, "jojogan_restyle_status", "Restyled")

        page.click("button:has-text('Packs')")
        wait_for_card(page, "Bold")
        page.wait_for_selector("#jojogan_try_on_face img")  # the restyled face, and the selected pack on it
        page.wait_for_selector("#jojogan_try_on_image img")
        page.click("#jojogan_compose button, #jojogan_compose .label-wrap")  # open "Compose a new pack"
        choose(page, "jojogan_compose_high", "calm")
        status = wait_for_status(page, "jojogan_packs_status", "Preview:")
        assert status == (
            "Preview: Layers up to 32 px from base, above from calm. Shown on the first face of your last restyle."
        )
        page.wait_for_selector("#jojogan_compose_preview img")
        assert page_width(page) <= 1280
        save_screenshot(page, tmp_path, "packs_compose.png")

        page.fill("#jojogan_compose_name textarea", "calm face")
        page.click("#jojogan_compose_save")
        wait_for_status(page, "jojogan_packs_status", "Saved the composition as style pack 'calm face'.")
        page.wait_for_selector("#jojogan_pack_gallery >> text=calm face")
        wait_for_card(page, "calm face.safetensors")  # the new pack is selected and shown

        page.click("#jojogan_compose_mode label:has-text('Mix')")  # the mix rows replace the swap's controls
        page.wait_for_selector("#jojogan_compose_source_1", state="visible")
        page.wait_for_selector("#jojogan_compose_low", state="hidden")
        assert wait_for_status(page, "jojogan_packs_status", "Mix of").startswith("Preview: Mix of base 50%, bold 50%.")
    assert read_pack_metadata(tiny_runtime.packs.existing("calm face"))["jojogan.source"] == "composed"
