"""The Packs tab's card for one style pack, as HTML: preview, details, training facts, raw metadata on demand.

Pure functions of a pack's metadata (no gradio, no files): packs come from strangers, so every value is
escaped, and long values (a 64-hex sha256) wrap instead of widening the page.
"""

import base64
import contextlib
import io
import json
from collections.abc import Mapping
from datetime import datetime
from html import escape
from typing import Any

from PIL import Image

from .packs import COMPACT_FORMAT_VERSION, THUMBNAIL_KEY
from .weights import human_size

CARD_PREVIEW_SIZE = 512
SHORT_HASH = 12
# every block of the card wraps long words and never grows wider than its panel
WRAP = "overflow-wrap:anywhere;word-break:break-word;min-width:0;max-width:100%;"
SUBDUED = "color:var(--body-text-color-subdued, #6b7280);"
EMPTY_HINT = (
    "No style packs yet. Get a first one: train it in the Train tab from one or a few portraits, import a "
    "style pack (.safetensors) or a JoJoGAN style (.pt) below, or download one of the published JoJoGAN styles below."
)


def json_entry(metadata: Mapping[str, str], key: str) -> dict[str, Any]:
    """A JSON-object metadata entry ({} when absent or unreadable)."""
    with contextlib.suppress(ValueError):
        value = json.loads(metadata.get(key, "{}"))
        if isinstance(value, dict):
            return value
    return {}


def duration_text(seconds: Any) -> str:
    """'42 s', '3 min 5 s' or '1 h 2 min' from a number of seconds ('' when not a number)."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return ""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 and whole != seconds else f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def date_text(value: str) -> str:
    """An ISO date as '2026-12-07 21:30 UTC' (the value itself when it is not an ISO date)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    zone = moment.tzname() or ""
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if zone in ("UTC", "UTC+00:00") else f" {zone}".rstrip())


def number_text(value: Any) -> str:
    """A number people read: whole numbers as such, others with up to 4 significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value)


def training_rows(training: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows for the facts of how a pack was trained; absent facts are left out."""
    rows = []
    for key, label, render in (
        ("references", "References", number_text),
        ("iterations", "Iterations", number_text),
        ("strength", "Strength", number_text),
        ("loss", "Loss", str),
        ("preserve_color", "Preserve colours", lambda v: "yes" if v else "no"),
        ("identity_weight", "Identity weight", number_text),
        ("seed", "Seed", lambda v: "random" if v is None else number_text(v)),
        ("time", "Duration", duration_text),
        ("device", "Device", str),
        ("final_loss", "Final loss", number_text),
    ):
        if key in training:
            text = render(training[key])
            if text != "":
                rows.append((label, text))
    return rows


def storage_rows(metadata: Mapping[str, str]) -> list[tuple[str, str]]:
    """(label, text) rows for how the weights are stored and, for a compacted pack, the quality measured then."""
    compact = metadata.get("jojogan.format_version") == COMPACT_FORMAT_VERSION
    record = json_entry(metadata, "jojogan.compression")
    methods = record.get("methods") if isinstance(record.get("methods"), dict) else {}
    words = {"lowrank": "low-rank", "int8": "int8", "dense": "dense", "same": "unchanged"}
    counts = ", ".join(f"{number_text(methods[key])} {word}" for key, word in words.items() if methods.get(key))
    stored = "compact: the difference from the base model" if compact else "full weights"
    if compact and counts:
        stored += f" ({counts} tensors)"
    if isinstance(record.get("full_bytes"), int):
        stored += f"; {human_size(record['full_bytes'])} in full"
    rows = [("Stored as", stored)]
    measured = record.get("measured") if isinstance(record.get("measured"), dict) else {}
    budget = record.get("budget") if isinstance(record.get("budget"), dict) else {}
    if {"psnr", "max_error", "off_percent"} <= set(measured) and {"min_psnr", "max_off_percent", "off_levels"} <= set(
        budget
    ):
        quality = (
            f"PSNR {number_text(measured['psnr'])} dB, largest error {number_text(measured['max_error'])} levels, "
            f"{number_text(measured['off_percent'])} % of pixels off by more than {number_text(budget['off_levels'])} "
            f"levels (budget: ≥ {number_text(budget['min_psnr'])} dB, ≤ {number_text(budget['max_off_percent'])} %), "
            f"against the full weights on {number_text(record.get('latents', '?'))} faces"
        )
        rows.append(("Measured quality" if compact else "Quality when compacted", quality))
    return rows


def detail_rows(metadata: Mapping[str, str], file_name: str, file_size: int | None) -> list[tuple[str, str]]:
    """(label, text) rows for the pack itself: author, licence, base model, origin, date, file, how it is stored."""
    base = json_entry(metadata, "jojogan.base")
    base_text = str(base.get("name", ""))
    if base.get("sha256"):
        base_text += f" (sha256 {str(base['sha256'])[:SHORT_HASH]}…)"
    rows = [
        ("Author", metadata.get("modelspec.author", "")),
        ("Licence", metadata.get("modelspec.license", "")),
        ("Base model", base_text.strip()),
        ("Made", metadata.get("jojogan.source", "")),
        ("Created", date_text(metadata["modelspec.date"]) if metadata.get("modelspec.date") else ""),
        ("File", f"{file_name} ({human_size(file_size)})" if file_size is not None else file_name),
        *storage_rows(metadata),
    ]
    return [(label, text) for label, text in rows if text]


def raw_metadata_text(metadata: Mapping[str, str]) -> str:
    """The metadata as indented JSON (JSON-valued entries decoded, the thumbnail left out)."""
    readable: dict[str, Any] = {}
    for key, value in metadata.items():
        if key == THUMBNAIL_KEY:
            continue
        decoded: Any = value
        if value.startswith(("{", "[")):
            with contextlib.suppress(ValueError):
                decoded = json.loads(value)
        readable[key] = decoded
    return json.dumps(readable, indent=2, ensure_ascii=False, sort_keys=True)


def image_data_uri(image: Image.Image, max_side: int = CARD_PREVIEW_SIZE) -> str:
    """A picture (scaled down to `max_side`) as a PNG data: URI for the card."""
    picture = image.convert("RGB")
    picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f'<tr><th style="border:none;width:1%;text-align:left;padding:2px 12px 2px 0;vertical-align:top;{SUBDUED}font-weight:normal;'
        f'white-space:nowrap">{escape(label)}</th><td style="border:none;padding:2px 0;{WRAP}">{escape(text)}</td></tr>'
        for label, text in rows
    )
    return f'<table style="border-collapse:collapse;width:100%;table-layout:auto;{WRAP}">{cells}</table>'


def pack_card_html(
    name: str,
    metadata: Mapping[str, str],
    *,
    file_name: str,
    file_size: int | None,
    preview_uri: str | None,
) -> str:
    """The card of one pack: large preview, title, description, details, training facts, raw metadata (closed).

    `preview_uri` is a data: URI of the preview (None: the card says there is none).
    """
    title = metadata.get("modelspec.title") or name
    subtitle = f'<div style="{SUBDUED}{WRAP}">{escape(name)}</div>' if title != name else ""
    description = metadata.get("modelspec.description", "")
    if preview_uri:
        picture = (
            f'<img src="{escape(preview_uri)}" alt="{escape(title)} preview" '
            'style="width:100%;max-width:384px;height:auto;border-radius:8px;display:block">'
        )
    else:
        picture = (
            f'<div style="width:100%;max-width:384px;aspect-ratio:1;border-radius:8px;display:flex;align-items:center;'
            f'justify-content:center;background:var(--background-fill-secondary, #eee);{SUBDUED}">No preview</div>'
        )
    training = training_rows(json_entry(metadata, "jojogan.training"))
    sections = [
        f'<h2 style="margin:0 0 4px 0;{WRAP}">{escape(title)}</h2>{subtitle}',
        f'<p style="white-space:pre-wrap;{WRAP}">{escape(description)}</p>' if description else "",
        table(detail_rows(metadata, file_name, file_size)),
        f'<h3 style="margin:12px 0 4px 0">How it was trained</h3>{table(training)}' if training else "",
        '<details style="margin-top:12px"><summary style="cursor:pointer">Raw metadata</summary>'
        f'<pre style="white-space:pre-wrap;{WRAP}font-size:0.85em">{escape(raw_metadata_text(metadata))}</pre>'
        "</details>",
    ]
    return (
        f'<div class="jojogan-pack-card" style="display:flex;flex-wrap:wrap;gap:16px;{WRAP}">'
        f'<div style="flex:1 1 240px;max-width:384px">{picture}</div>'
        f'<div style="flex:2 1 280px;{WRAP}">{"".join(sections)}</div></div>'
    )


def empty_card_html() -> str:
    """What the card says when there is no pack yet: how to get a first one."""
    return f'<div class="jojogan-pack-card jojogan-empty" style="padding:12px;{WRAP}"><p>{escape(EMPTY_HINT)}</p></div>'
