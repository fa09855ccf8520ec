"""What the web UI glue needs from the core, in one place: the shared services and the restyle step.

The web UI loads each `scripts/*.py` file as a separate module that cannot import the others, so the
one `Services` object of the process is created here by a memoized factory. Its models folder is read
from the settings once (the tab and the /jojogan/v1 routes are built on it at start-up, so a new folder
needs a restart); device, precision, detector and downloads follow the settings live. The default models
folder is the web UI's own `models/JoJoGAN` (reinstalling an extension deletes the extension's folder).
No web UI import here: the glue hands in its queue lock and VRAM hooks.
"""

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image

from .args import INFOTEXT_FIELDS, RestyleArgs, infotext, parse
from .errors import JojoganError
from .faces.detect import DEFAULT_NETWORK, DETECTOR_CHOICES
from .files import move_missing_files
from .jobs import TrainingJob, TrainingJobs
from .restyle import Restyler
from .runtime import Runtime

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Setting:
    """One entry of the web UI's "JoJoGAN" settings section."""

    key: str
    default: Any
    label: str
    choices: tuple[str, ...] = ()
    needs_restart: bool = False
    lists_packs: bool = False  # a dropdown of the style packs ("" = none) instead of free text


SETTINGS = (
    Setting("jojogan_models_dir", "", "Models folder (empty: the web UI's models/JoJoGAN)", needs_restart=True),
    Setting("jojogan_allow_download", True, "Download missing model files automatically"),
    Setting("jojogan_keep_loaded", True, "Keep JoJoGAN models loaded between uses"),
    Setting(
        "jojogan_precision",
        "float32",
        "Precision on GPU (half: faster; training keeps float32 weights under autocast)",
        tuple(DTYPES),
    ),
    Setting(
        "jojogan_detector",
        DEFAULT_NETWORK,
        "Face detector (auto: MobileNet-0.25 on CPU, ResNet-50 on GPU)",
        DETECTOR_CHOICES,
    ),
    Setting(
        "jojogan_check_detector",
        True,
        "Self-check a face detector file that is not the catalog's once before using it (off: trust your own)",
    ),
    Setting("jojogan_default_pack", "", "Default style pack", lists_packs=True),
    Setting(
        "jojogan_compact_packs",
        True,
        "Save trained style packs compact (their difference from the base model, within a measured quality budget)",
    ),
    Setting(
        "jojogan_max_image_megapixels",
        40,
        "Largest uploaded image JoJoGAN accepts (megapixels, checked before decoding)",
    ),
)


# The generation-info entry that says why an image was left unchanged (never read back when pasting).
NOTE_LABEL = "JoJoGAN note"
WEBUI_MODELS_SUBFOLDER = "JoJoGAN"  # <webui>/models/JoJoGAN, beside the host's other model folders


class RestyleOutcome(NamedTuple):
    """What the txt2img/img2img/Extras step did: the image, its infotext entries and a message."""

    image: Image.Image
    infotext: dict[str, str]
    message: str

    @property
    def note(self) -> str:
        """Why the image was left unchanged, for the user to see under it ('' when faces were restyled)."""
        return "" if self.infotext else self.message

    def record(self, params: dict[str, str], log: Callable[[str], None] = print) -> None:
        """Write what happened where the user looks: the infotext entries into the image's parameters (txt2img's
        extra generation parameters, Extras' info), or the note saying why nothing changed; the message to `log`.

        Entries an earlier image left there go first: X/Y/Z plot cells share one parameters dict.
        """
        for label in (*INFOTEXT_FIELDS.values(), NOTE_LABEL):
            params.pop(label, None)
        params.update(self.infotext)
        if self.note:
            params[NOTE_LABEL] = self.note
        if self.message:
            log(f"JoJoGAN: {self.message}")


@dataclass
class Services:
    """The runtime, the training jobs and the restyler of one web UI (or app) process."""

    runtime: Runtime
    jobs: TrainingJobs
    restyler: Restyler
    exclusive: Callable[[], contextlib.AbstractContextManager]

    def apply_settings(
        self,
        *,
        device: str | torch.device,
        precision: str,
        allow_download: bool,
        detector: str,
        max_image_megapixels: float = 40,
        check_detector: bool = True,
        compact_packs: bool = True,
    ) -> None:
        """Follow the web UI's settings; a device, precision or detector change unloads the models."""
        self.jobs.compact = compact_packs
        runtime = self.runtime
        runtime.allow_download = allow_download
        max_pixels = max(1, int(float(max_image_megapixels) * 1_000_000))
        if max_pixels != runtime.image_limits.max_pixels:
            runtime.image_limits = replace(
                runtime.image_limits,
                max_pixels=max_pixels,
                max_total_pixels=max(max_pixels, runtime.image_limits.max_total_pixels),
            )
        dtype = DTYPES.get(precision, torch.float32) if torch.device(device).type != "cpu" else torch.float32
        wanted = (torch.device(device), dtype, detector, check_detector)
        if wanted != (runtime.device, runtime.dtype, runtime.detector_network, runtime.verify_detector):
            runtime.unload()
            runtime.device, runtime.dtype, runtime.detector_network, runtime.verify_detector = wanted

    def install_hooks(
        self,
        *,
        exclusive: Callable[[], contextlib.AbstractContextManager],
        before: Callable[[], None] | None = None,
        after: Callable[[], None] | None = None,
        observe: Callable[[TrainingJob], None] | None = None,
        interrupted: Callable[[], bool] | None = None,
    ) -> None:
        """The web UI's queue lock, VRAM hand-over and progress reporting for long jobs."""
        self.exclusive = exclusive
        jobs = self.jobs
        jobs.exclusive, jobs.before, jobs.after, jobs.observe, jobs.interrupted = (
            exclusive,
            before,
            after,
            observe,
            interrupted,
        )

    def restyle_or_keep(
        self,
        image: Image.Image,
        raw_args: dict[str, Any] | None,
        should_stop: Callable[[], bool] | None = None,
        default_pack: str = "",
    ) -> RestyleOutcome:
        """The txt2img/img2img/Extras step: (image, infotext entries, message); it never raises.

        Disabled or empty arguments leave the image as it is; without a pack in the arguments,
        `default_pack` (the "Default style pack" setting) is used. Generation must never fail because of
        a face step, so every failure (a bad argument, a missing pack, out of memory) keeps the image and
        becomes the message.
        """
        if not raw_args:
            return RestyleOutcome(image, {}, "")
        if not raw_args.get("pack") and default_pack:
            raw_args = {**raw_args, "pack": default_pack}
        try:
            args = parse(RestyleArgs, raw_args)
            if not args.enabled:
                return RestyleOutcome(image, {}, "")
            if not args.pack:
                message = (
                    'No style pack was chosen, so the image is unchanged; pick one in the accordion (API: "pack").'
                )
                return RestyleOutcome(image, {}, message)
            result = self.restyler.restyle(image, args, should_stop=should_stop)
        except JojoganError as error:
            return RestyleOutcome(image, {}, str(error))
        except (RuntimeError, OSError, MemoryError) as error:  # e.g. out of GPU memory
            message = f"Restyling failed, the image is unchanged: {type(error).__name__}: {str(error)[:300]}"
            return RestyleOutcome(image, {}, message)
        return RestyleOutcome(result.image, (infotext(args) if result.faces else {}), result.message)


_SERVICES: dict[tuple[str, str], Services] = {}  # the process's one Services per extension and web UI folder
_SERVICES_LOCK = threading.Lock()


def adopt_models_folder(old: Path, new: Path) -> str:
    """Move what an earlier version kept in `old` (the extension's own models/) into `new`; a log line or ''.

    Only files that `new` does not have yet are moved (a pack together with its preview); nothing is
    overwritten or deleted, and whatever stays behind is named so the user can sort it out.
    """
    moved, left = move_missing_files(old, new)
    if not moved and not left:
        return ""
    parts = [f"JoJoGAN: the models folder is now {new} (outside the extension, so a reinstall keeps it)."]
    if moved:
        parts.append(f"Moved {len(moved)} file{'s' if len(moved) != 1 else ''} there from {old}.")
    if left:
        names = ", ".join(str(path.relative_to(old)) for path in left[:10]) + (", …" if len(left) > 10 else "")
        parts.append(f"Left {len(left)} in {old} because {new} already has files of the same name: {names}.")
    return " ".join(parts)


def services_from_settings(
    option: Callable[[str, Any], Any],
    extension_dir: Path,
    webui_models_dir: str | Path,
    device: str | torch.device,
    log: Callable[[str], None] = print,
) -> Services:
    """The process's Services, following the current settings (`option(key, default)` reads one).

    The models folder comes from the settings of the first call and stays until a restart, so the tab,
    the routes and the scripts always share one folder; the other settings are applied on every call.
    Without a folder in the settings it is `<webui>/models/JoJoGAN`, which adopts the files an earlier
    version kept inside the extension (see `adopt_models_folder`; `log` reports that once).
    """
    values = {setting.key: option(setting.key, setting.default) for setting in SETTINGS}
    key = (str(extension_dir), str(webui_models_dir))
    with _SERVICES_LOCK:
        if key not in _SERVICES:
            models_dir = Path(values["jojogan_models_dir"] or Path(webui_models_dir) / WEBUI_MODELS_SUBFOLDER)
            if not values["jojogan_models_dir"]:
                notice = adopt_models_folder(Path(extension_dir) / "models", models_dir)
                if notice:
                    log(notice)
            runtime = Runtime(models_dir, webui_models_dir=webui_models_dir)
            _SERVICES[key] = Services(runtime, TrainingJobs(runtime), Restyler(runtime), contextlib.nullcontext)
        services = _SERVICES[key]
    services.apply_settings(
        device=device,
        precision=values["jojogan_precision"],
        allow_download=bool(values["jojogan_allow_download"]),
        detector=values["jojogan_detector"],
        max_image_megapixels=values["jojogan_max_image_megapixels"],
        check_detector=bool(values["jojogan_check_detector"]),
        compact_packs=bool(values["jojogan_compact_packs"]),
    )
    return services
