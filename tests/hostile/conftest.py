"""Fixtures of the hostile-input suite: a library with one pack to protect, the four fronts, and the checks
every case ends with (the folder is byte-identical, no temp file is left, the front still answers).

Pillow's decompression-bomb guard is switched off for every test here, as the web UI does process-wide.
"""

import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from jojogan_ext import cli
from jojogan_ext.api import API_PREFIX, create_router
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.packs import save_pack
from jojogan_ext.runtime import Runtime
from jojogan_ext.ui import TabHandlers

from .hostile_inputs import styled

TEMP_ENDINGS = (".tmp", ".partial", ".incoming")
REPO = Path(__file__).resolve().parents[2]
PROCESS_ENV = os.environ | {"PYTHONPATH": str(REPO)}


@pytest.fixture(autouse=True)
def pillow_guard_off(monkeypatch):
    """What A1111's xyz_grid script does for the whole process: no decompression-bomb check in Pillow."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)


@pytest.fixture()
def runtime(tiny_runtime: Runtime) -> Runtime:
    """The tiny runtime with one pack, 'keep' (and its preview), that no hostile input may touch."""
    base = tiny_runtime.base.generator
    save_pack(
        tiny_runtime.packs.new_path("keep"),
        styled(base),
        base=base,
        title="Keep",
        dtype="float32",
        preview=Image.new("RGB", (16, 16), (1, 2, 3)),
    )
    return tiny_runtime


@pytest.fixture()
def jobs(runtime: Runtime) -> Iterator[TrainingJobs]:
    """Training jobs over the runtime; one still running at the end is cancelled and awaited."""
    jobs = TrainingJobs(runtime)
    yield jobs
    current = jobs.current()
    if current is not None and current.active:
        jobs.cancel(current.id)
        jobs.wait(current.id, timeout=60)


@pytest.fixture()
def client(runtime: Runtime, jobs: TrainingJobs) -> TestClient:
    """The REST API on a real FastAPI app; unexpected server exceptions are raised into the test."""
    app = FastAPI()
    app.include_router(create_router(runtime, jobs), prefix=API_PREFIX)
    return TestClient(app)


@pytest.fixture()
def handlers(runtime: Runtime, jobs: TrainingJobs) -> TabHandlers:
    return TabHandlers(runtime, jobs, poll_seconds=0.05)


def api_url(path: str) -> str:
    return f"{API_PREFIX}/{path}"


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (links not followed) by relative path → sha256 of its bytes."""
    digest = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if not path.is_symlink():
                digest[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def temp_files(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.name.endswith(TEMP_ENDINGS)]


@contextlib.contextmanager
def unchanged(runtime: Runtime) -> Iterator[None]:
    """The case must leave the packs folder (and everything around it) byte-identical, with no temp files."""
    around = runtime.models_dir.parent
    before = tree_digest(around)
    yield
    assert tree_digest(around) == before
    assert temp_files(runtime.packs.folder) == []


def run_cli(runtime: Runtime, capsys, *args: str) -> tuple[int, str, str]:
    """`python -m jojogan_ext ...` in this process over the runtime's models folder: (exit code, stdout, stderr)."""
    capsys.readouterr()
    flags = ["--device", "cpu", "--detector", "retinaface_mobile0.25", "--skip-detector-check"]  # random weights
    code = cli.main(["--models-dir", str(runtime.models_dir), *flags, *args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_command(runtime: Runtime, *args: str) -> list[str]:
    """The command line of `python -m jojogan_ext ...` over the runtime's models folder, for a real process."""
    return [sys.executable, "-m", "jojogan_ext", "--models-dir", str(runtime.models_dir), "--device", "cpu",
            "--detector", "retinaface_mobile0.25", "--skip-detector-check", *args]  # fmt: skip


def run_cli_process(runtime: Runtime, *args: str) -> subprocess.CompletedProcess:
    """`python -m jojogan_ext ...` as a user runs it, in its own process."""
    return subprocess.run(
        cli_command(runtime, *args), capture_output=True, text=True, timeout=120, cwd=REPO, env=PROCESS_ENV
    )


def assert_cli_refused(code: int, err: str, *fragments: str) -> None:
    """Exit status 1, exactly one line on stderr ("error: ..."), holding every fragment, no traceback."""
    lines = err.splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


def assert_ui_refused(status: str, *fragments: str) -> None:
    """A readable sentence in the status box (no exception escaped into gradio)."""
    assert isinstance(status, str) and status.startswith("⚠️ ") and "Traceback" not in status, status
    for fragment in fragments:
        assert fragment in status, (fragment, status)


def assert_api_refused(answer, status: int, *fragments: str) -> None:
    """The status code and a JSON `detail` sentence holding every fragment."""
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and detail[-1:] in (".", "?"), detail  # a sentence
    for fragment in fragments:
        assert fragment in detail, (fragment, detail)
