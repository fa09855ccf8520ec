"""Steps in the app's page shared by the browser test and docs/take_screenshots.py (playwright, headless Chromium)."""

import time
from pathlib import Path

# Chromium on a machine with no network and no screen: nothing in the background, no sandbox (root), no GPU
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def wait_for_text(page, selector: str, text: str, timeout: float = 120.0) -> str:
    """Poll a text box from Python until it contains `text`, and return it (in-page polling stalls in headless
    Chromium)."""
    deadline = time.monotonic() + timeout
    value = ""
    while time.monotonic() < deadline:
        value = page.input_value(selector)
        if text in value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"'{text}' did not appear in {selector} within {timeout} s; it says: {value!r}")


def fill_training_form(page, reference: Path, name: str, iterations: int) -> None:
    """Train tab: upload one aligned reference (waiting until it is uploaded), name the pack, set the iterations."""
    page.set_input_files("#jojogan_references input[type=file]", str(reference))
    page.wait_for_selector(f"#jojogan_references a[download='{reference.name}']")  # uploaded, not "Uploading..."
    page.check("#jojogan_references_are_aligned input[type=checkbox]")
    page.fill("#jojogan_name textarea", name)
    page.fill("#jojogan_iterations input[type=number]", str(iterations))
    page.press("#jojogan_iterations input[type=number]", "Tab")
