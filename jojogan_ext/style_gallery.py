"""The published JoJoGAN styles as people see them: a human title, the download size, and whether each one is
downloaded or already a style pack.

Pure functions over the weights catalog plus the file names found on disk (no gradio); the HTML is escaped.
"""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path

from .weights import JOJOGAN_STYLE_NOTE, WeightFile, human_size


@dataclass(frozen=True)
class PublishedStyle:
    """One published style: its catalog entry, a title and where it stands on this machine."""

    entry: WeightFile
    downloaded: bool
    pack: str | None  # the pack it was imported as, when there is one

    @property
    def title(self) -> str:
        """The human title ('JoJo, colours kept'), from the catalog description (else the file name)."""
        prefix = f"{JOJOGAN_STYLE_NOTE}: "
        description = self.entry.description
        return description.removeprefix(prefix) if description.startswith(prefix) else self.entry.name

    @property
    def label(self) -> str:
        """The dropdown's text for this style: title and file name (gradio 3 dropdowns show values only)."""
        return self.entry.name if self.title == self.entry.name else f"{self.title} ({self.entry.name})"

    @property
    def state(self) -> str:
        if self.pack is not None:
            return f"style pack '{self.pack}'"
        return "downloaded, not imported yet" if self.downloaded else "not downloaded"


def published_styles(
    catalog: Mapping[str, WeightFile], downloaded: Collection[str], packs: Collection[str]
) -> list[PublishedStyle]:
    """The catalog's styles with their state: `downloaded` holds file names on disk, `packs` the pack names."""
    found = []
    for entry in catalog.values():
        if entry.kind != "styles":
            continue
        stem = Path(entry.name).stem
        found.append(PublishedStyle(entry, entry.name in downloaded, stem if stem in packs else None))
    return found


def resolve(styles: Iterable[PublishedStyle], choice: str | None) -> PublishedStyle | None:
    """The style a dropdown label or a plain file name stands for (None when it is neither)."""
    return next((style for style in styles if choice in (style.label, style.entry.name)), None)


def gallery_html(styles: Iterable[PublishedStyle]) -> str:
    """A compact table of the published styles: title, file, size and state."""
    rows = "".join(
        "<tr>"
        f'<td style="border:none;padding:2px 12px 2px 0;overflow-wrap:anywhere">{escape(style.title)}</td>'
        f'<td style="border:none;padding:2px 12px 2px 0;overflow-wrap:anywhere">{escape(style.entry.name)}</td>'
        f'<td style="border:none;padding:2px 12px 2px 0;white-space:nowrap">{escape(human_size(style.entry.size))}</td>'
        f'<td style="border:none;padding:2px 0">{escape(style.state)}</td>'
        "</tr>"
        for style in styles
    )
    head = "".join(
        f'<th style="border:none;text-align:left;padding:2px 12px 2px 0;font-weight:normal;'
        f'color:var(--body-text-color-subdued, #6b7280)">{name}</th>'
        for name in ("Style", "File", "Size", "Here")
    )
    return (
        '<table class="jojogan-published" style="border-collapse:collapse;width:100%;max-width:100%">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )
