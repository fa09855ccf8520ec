"""Take the README's screenshots of the standalone app (Train while running, Restyle, Packs with a card, Compose).

Runs the app on 127.0.0.1 with the tests' tiny models (random weights: the pictures are noise, the UI is real)
and drives Debian's `chromium` headless with playwright (`playwright install` is never needed). Re-run it after
every UI change:

    .venv/bin/python docs/take_screenshots.py [--chromium /usr/bin/chromium] [--out docs]

Each PNG is reduced to a 256-colour palette so that it stays under 200 KB.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from browser_steps import CHROMIUM_ARGS, fill_training_form, wait_for_text  # noqa: E402

from jojogan_ext.app import create_app  # noqa: E402
from jojogan_ext.packs import update_pack_details  # noqa: E402
from jojogan_ext.runtime import Runtime  # noqa: E402

from app_server import served  # noqa: E402  (the tests' helpers: a served app, page steps and tiny models)
from tiny_models import write_tiny_models  # noqa: E402

MAX_BYTES = 200_000
VIEWPORT = {"width": 1280, "height": 900}
REFERENCE = REPO.parent / "shared" / "fixtures" / "align" / "A_full_256.png"


def save(page, path: Path, selector: str | None = None) -> None:
    """A full-page screenshot (or one element's) as a palette PNG under MAX_BYTES."""
    if selector is None:
        page.screenshot(path=str(path), full_page=True)
    else:
        page.locator(selector).screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    size = path.stat().st_size
    print(f"{path}: {size / 1000:.0f} kB")
    if size > MAX_BYTES:
        raise SystemExit(f"{path.name} is {size} bytes, over the {MAX_BYTES} byte limit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="a portrait to train on")
    options = parser.parse_args()
    from playwright.sync_api import sync_playwright

    models = Path(tempfile.mkdtemp(prefix="jojogan-shots-"))
    write_tiny_models(models)
    (models / "styles").mkdir()
    runtime = Runtime(models, detector_network="retinaface_mobile0.25", verify_detector=False)  # random weights
    options.out.mkdir(parents=True, exist_ok=True)
    with served(create_app(runtime)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(options.chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(120_000)
        page.goto(url, wait_until="domcontentloaded")

        fill_training_form(page, options.reference, "ink", 60)
        page.click("#jojogan_train")
        wait_for_text(page, "#jojogan_train_status textarea", "step ")
        page.wait_for_selector("#jojogan_preview img")
        save(page, options.out / "train.png")
        wait_for_text(page, "#jojogan_train_status textarea", "Saved style pack")

        update_pack_details(
            runtime.packs.existing("ink"),
            {"title": "Ink portraits", "author": "you", "description": "Bold ink lines, trained on one portrait."},
        )
        page.click("button:has-text('Restyle')")
        page.set_input_files("#jojogan_restyle_image input[type=file]", str(options.reference))
        page.wait_for_selector(f"#jojogan_restyle_image a[download='{options.reference.name}']")
        page.fill("#jojogan_restyle_confidence input[type=number]", "0.05")  # random detector weights: low scores
        page.press("#jojogan_restyle_confidence input[type=number]", "Tab")
        page.click("#jojogan_restyle_button")
        wait_for_text(page, "#jojogan_restyle_status textarea", "face")
        page.wait_for_selector("#jojogan_restyle_result img")
        save(page, options.out / "restyle.png")

        page.reload(wait_until="domcontentloaded")
        page.click("button:has-text('Packs')")
        page.wait_for_selector("#jojogan_pack_card >> text=Ink portraits")
        if not page.is_visible("#jojogan_try_on_image"):  # closed: the page was built before the first pack
            page.click("#jojogan_try_on .label-wrap")
        page.wait_for_selector("#jojogan_try_on_image img")  # the pack on the restyled face
        save(page, options.out / "packs.png")

        page.click("#jojogan_compose button, #jojogan_compose .label-wrap")  # open "Compose a new pack"
        for elem_id, value in [("jojogan_compose_high", "ink"), ("jojogan_compose_at", "16")]:
            field = page.locator(f"#{elem_id} input")  # type to filter, Enter: as a user picks an option
            field.click()
            field.fill(value)
            field.press("Enter")
        wait_for_text(page, "#jojogan_packs_status textarea", "Preview:")
        page.wait_for_selector("#jojogan_compose_preview img")
        page.fill("#jojogan_compose_name textarea", "ink face")
        save(page, options.out / "compose.png", "#jojogan_compose")
        browser.close()


if __name__ == "__main__":
    main()
