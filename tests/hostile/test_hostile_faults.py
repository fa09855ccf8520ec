"""Faults: cancel while saving, a process killed mid-training or mid-save, a full disk, a download cut off.

Each leaves the packs folder as it was; leftovers of a killed process are cleaned when a Runtime starts.
"""

import errno
import fcntl
import hashlib
import http.server
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from jojogan_ext import packs, weights
from jojogan_ext.args import TrainArgs
from jojogan_ext.errors import MissingWeightsError
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.runtime import Runtime
from jojogan_ext.ui import TabHandlers

from .conftest import (
    PROCESS_ENV,
    REPO,
    api_url,
    assert_api_refused,
    assert_cli_refused,
    assert_ui_refused,
    cli_command,
    run_cli,
    unchanged,
)
from .hostile_inputs import noise_image, valid_pack, valid_style

TRAIN_VALUES = [
    "late",
    True,
    0,
    2,
    1.0,
    False,
    "discriminator",
    0.0,
    0.002,
    1,
]  # Train tab controls, TRAIN_FIELDS order


def test_cancel_while_saving_saves_nothing(runtime, tmp_path):
    reference = tmp_path / "reference.png"
    noise_image(64, 64).save(reference)

    def cancel_when_saving(job) -> None:  # the web UI's observe hook, here pressing Cancel at the worst moment
        if job.state == "saving":
            jobs.cancel(job.id)

    jobs = TrainingJobs(runtime, observe=cancel_when_saving)
    with unchanged(runtime):
        job = jobs.start([noise_image(64, 64)], TrainArgs(name="late", iterations=2, references_are_aligned=True))
        assert jobs.wait(job.id, timeout=120).state == "cancelled"
        assert job.message == "Saving 'late' was cancelled; nothing was saved." and job.pack_name is None
        status = list(TabHandlers(runtime, jobs, poll_seconds=0.05).train([str(reference)], None, False, *TRAIN_VALUES))
        assert_ui_refused(status[-1][0], "Saving 'late' was cancelled; nothing was saved.")


def test_a_training_killed_midway_leaves_the_folder_as_it_was(runtime, tmp_path):
    reference = tmp_path / "reference.png"
    noise_image(64, 64).save(reference)
    command = cli_command(runtime, "train", str(reference), "--name", "killed", "--iterations", "2000",
                          "--references-are-aligned")  # fmt: skip
    with unchanged(runtime):
        leader, follower = pty.openpty()  # a terminal, so the progress bar shows when training has begun
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # of some width
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, cwd=REPO, env=PROCESS_ENV
        )
        os.close(follower)
        seen, deadline = b"", time.monotonic() + 120
        try:
            while not re.search(rb"\b[1-9]\d*/2000\b", seen):  # the bar shows finished steps
                assert time.monotonic() < deadline and process.poll() is None, seen.decode(errors="replace")
                if select.select([leader], [], [], 0.5)[0]:
                    seen += os.read(leader, 4096)
            process.send_signal(signal.SIGKILL)  # no cleanup code of ours runs
            assert process.wait(timeout=30) == -signal.SIGKILL
        finally:
            process.kill()
            os.close(leader)


def test_a_save_killed_midway_leaves_a_temp_file_that_the_next_start_removes(runtime, tmp_path):
    target = runtime.packs.folder / "half.safetensors"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from jojogan_ext.packs import write_pack_files\n"
        "def write(temp):\n"
        "    temp.write_bytes(b'half a pack')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_pack_files(Path(sys.argv[1]), write, b'preview', overwrite=False)\n"
    )
    before = {path.name for path in runtime.packs.folder.iterdir()}
    result = subprocess.run([sys.executable, "-c", script, str(target)], cwd=REPO, env=PROCESS_ENV, timeout=120)
    assert result.returncode == -signal.SIGKILL
    left = [path for path in runtime.packs.folder.iterdir() if path.name not in before]
    assert [path.name.startswith(".half.safetensors.") and path.suffix == ".tmp" for path in left] == [True]
    assert not target.exists() and [info.name for info in runtime.packs.list()] == ["keep"]  # never listed

    fresh = runtime.packs.folder / ".other.safetensors.0123456789ab.tmp"  # a save running right now elsewhere
    fresh.write_bytes(b"in progress")
    download = runtime.packs.folder / "style.pt.0123abcd.partial"  # torch.hub's file of a killed download
    download.write_bytes(b"half a download")
    an_hour_ago = time.time() - 3600
    for stale in (*left, download):
        os.utime(stale, (an_hour_ago, an_hour_ago))
    Runtime(runtime.models_dir)
    assert sorted(path.name for path in runtime.packs.folder.iterdir()) == sorted([*before, fresh.name])


def fill_the_disk(monkeypatch) -> None:
    """From now on every pack write runs out of space halfway: a few bytes land in the temp file, then ENOSPC."""

    def fail(target: str | Path) -> None:
        Path(target).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(packs, "save_file", lambda tensors, filename, metadata=None: fail(filename))
    monkeypatch.setattr(packs.shutil, "copyfile", lambda source, target: fail(target))


def test_a_full_disk_leaves_the_folder_as_it_was(runtime, client, handlers, capsys, tmp_path, monkeypatch):
    base = runtime.base.generator
    sources = [valid_pack(tmp_path, base), valid_style(tmp_path, base)]
    fill_the_disk(monkeypatch)
    for source in sources:
        with unchanged(runtime), pytest.raises(OSError) as error:
            runtime.import_pack(source, "new")
        assert error.value.errno == errno.ENOSPC
        with unchanged(runtime):
            answer = client.post(api_url("packs"), params={"name": "new"}, content=source.read_bytes())
            assert_api_refused(answer, 507, "Importing the style pack failed", "No space left on device")
        assert client.get(api_url("version")).status_code == 200
        with unchanged(runtime):
            assert_ui_refused(handlers.import_file(str(source), "new", False)[0], "No space left on device")
        with unchanged(runtime):
            code, _, err = run_cli(runtime, capsys, "import", str(source), "--name", "new")
            assert_cli_refused(code, err, "No space left on device")
    jobs = TrainingJobs(runtime)
    with unchanged(runtime):
        job = jobs.start([noise_image(64, 64)], TrainArgs(name="new", iterations=1, references_are_aligned=True))
        assert jobs.wait(job.id, timeout=120).state == "failed"
        assert "No space left on device" in job.message


class HalfwayHandler(http.server.BaseHTTPRequestHandler):
    """Announces the whole file, sends half of it, then hangs up."""

    payload = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload[: len(self.payload) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture()
def cut_off_style(runtime, tmp_path):
    """A catalog entry for a real JoJoGAN style whose download is cut off mid-stream by a local server."""
    data = valid_style(tmp_path, runtime.base.generator).read_bytes()
    handler = type("Handler", (HalfwayHandler,), {"payload": data})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield weights.WeightFile(
        name="cut_off_style.pt",
        url=f"http://127.0.0.1:{server.server_address[1]}/cut_off_style.pt",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        kind="styles",
        description="a JoJoGAN style served halfway",
        license="test",
    )
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_download_cut_off_leaves_the_folder_as_it_was(runtime, handlers, cut_off_style):
    with unchanged(runtime), pytest.raises(MissingWeightsError, match=r"cut_off_style\.pt"):
        weights.download(cut_off_style, runtime.packs.folder, progress=False)
    handlers.catalog = {cut_off_style.name: cut_off_style}
    with unchanged(runtime):
        updates = list(handlers.fetch(cut_off_style.name))
        assert_ui_refused(updates[-1][0], "cut_off_style.pt", "could not be downloaded")
