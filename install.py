"""Installs the extension's missing requirements through the web UI's own pip (run by the web UI at start).

Only installs what is absent; never touches torch/torchvision, never uninstalls, never downloads weights.
"""

import re
from collections.abc import Callable, Iterable
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().with_name("requirements.txt")
NEVER_TOUCH = {"torch", "torchvision", "torchaudio", "xformers"}


def requirement_name(line: str) -> str:
    """The distribution name of a requirement line ('lpips>=0.1.4' -> 'lpips')."""
    return re.split(r"[\s<>=!~;\[]", line.strip(), maxsplit=1)[0]


def requirements_to_install(lines: Iterable[str], is_installed: Callable[[str], bool]) -> list[str]:
    """The requirement lines whose package is missing, skipping comments and the web UI's torch stack."""
    wanted = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or requirement_name(line).lower() in NEVER_TOUCH:
            continue
        if not is_installed(requirement_name(line)):
            wanted.append(line)
    return wanted


if __name__ == "__main__":
    import launch  # the web UI's module; only importable when the web UI runs this file

    for requirement in requirements_to_install(REQUIREMENTS.read_text().splitlines(), launch.is_installed):
        launch.run_pip(f'install "{requirement}"', f"sd-webui-jojogan requirement: {requirement}")
