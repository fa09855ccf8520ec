"""install.py: which requirement lines it would hand to the web UI's pip."""

import importlib.metadata
import importlib.util

from conftest import REPO


def load_install_module():
    spec = importlib.util.spec_from_file_location("jojogan_install", REPO / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the web UI part only runs as __main__
    return module


def installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_only_missing_requirements_are_installed():
    install = load_install_module()
    lines = ["# comment", "", "lpips>=0.1.4", "torch==9.9", "torchvision", "surely-absent-package>=1 # why", "tqdm"]
    assert install.requirements_to_install(lines, installed) == ["surely-absent-package>=1"]


def test_project_requirements_parse_and_skip_torch():
    install = load_install_module()
    lines = install.REQUIREMENTS.read_text().splitlines()
    names = [install.requirement_name(line) for line in lines if line.strip() and not line.startswith("#")]
    assert names and all(name.replace("-", "").replace("_", "").isalnum() for name in names)
    assert install.requirements_to_install(lines, lambda name: True) == []
    assert "torch" not in {n.lower() for n in names} and "torchvision" not in {n.lower() for n in names}
