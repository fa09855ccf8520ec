"""Screenshots of the extension in a running web UI (A1111 or Forge): the JoJoGAN tab's Train, Restyle and Packs
tabs and the txt2img accordion opened, for a person to look at. Not a test; writes PNGs only into `out`.

Usage: python tests/webui/screenshots.py http://127.0.0.1:7860 /tmp/screens/a1111 [--chromium /usr/bin/chromium]
"""

import argparse
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

VIEWPORT = {"width": 1400, "height": 1000}


def open_top_tab(page: Page, label: str) -> None:
    page.locator("#tabs > .tab-nav button", has_text=label).first.click()
    page.wait_for_timeout(800)


def take(url: str, out: Path, chromium: str) -> list[Path]:
    """Open the web UI, click through the JoJoGAN tab and the txt2img accordion, save one PNG per view."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url, wait_until="load", timeout=120_000)
        page.wait_for_selector("#tab_jojogan", state="attached", timeout=120_000)
        page.wait_for_timeout(2000)
        open_top_tab(page, "JoJoGAN")
        for sub_tab in ("Train", "Restyle", "Packs"):
            page.locator("#tab_jojogan button", has_text=sub_tab).first.click()
            page.wait_for_timeout(1500)
            written.append(out / f"jojogan-{sub_tab.lower()}.png")
            page.screenshot(path=written[-1], full_page=True)
        open_top_tab(page, "txt2img")
        accordion = page.locator("#jojogan_txt2img")
        accordion.locator(".label-wrap").first.click()
        page.wait_for_timeout(1500)
        accordion.scroll_into_view_if_needed()
        written.append(out / "txt2img-accordion.png")
        page.screenshot(path=written[-1], full_page=True)
        written.append(out / "txt2img-accordion-only.png")
        accordion.screenshot(path=written[-1])
        for section in accordion.locator(".label-wrap").all()[1:]:  # its closed sections, opened
            section.click()
        page.wait_for_timeout(1000)
        written.append(out / "txt2img-accordion-sections.png")
        accordion.screenshot(path=written[-1])
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    arguments = parser.parse_args()
    for path in take(arguments.url, arguments.out, arguments.chromium):
        print(path)


if __name__ == "__main__":
    main()
