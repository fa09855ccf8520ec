"""Hostile images through every front: refused with a sentence before anything large is decoded.

Pillow's own bomb guard is off (see conftest), so only our gate stands between a bomb and the memory.
"""

import asyncio
import base64
import io
import time

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from jojogan_ext.errors import ImageError
from jojogan_ext.images import ImageLimits
from jojogan_ext.ui import build_tab

from .conftest import (
    api_url,
    assert_api_refused,
    assert_cli_refused,
    assert_ui_refused,
    run_cli,
    run_cli_process,
    unchanged,
)
from .hostile_inputs import image_cases, noise_image, odd_valid_images, png_bomb, png_declaring

# strength, faces, max faces, confidence, size, feather, colour, face packs, swap resolution, swap into
RESTYLE_OPTIONS = [1.0, "", 1, 0.05, 8, 0.15, False, "", "off", "base"]


@pytest.fixture()
def cases(tmp_path):
    return image_cases(tmp_path / "images")


@pytest.fixture()
def portrait(tmp_path):
    """A valid picture to send next to a hostile one."""
    path = tmp_path / "portrait.png"
    noise_image(64, 64).save(path)
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_python_api_raises_image_errors_quickly(runtime, cases):
    for case in cases:
        started = time.perf_counter()
        with unchanged(runtime), pytest.raises(ImageError) as error:
            runtime.image_limits.open(case.path)
        assert isinstance(error.value, ValueError)
        assert case.reason in str(error.value) and case.path.name in str(error.value), case.label
        assert time.perf_counter() - started < 1.0, case.label  # refused from the header, not after decoding


def test_limits_are_configurable_per_runtime(runtime, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bomb(1000, 1000))  # 1 megapixel, a few KB
    assert runtime.image_limits.open(photo).size == (1000, 1000)
    runtime.image_limits = ImageLimits(max_pixels=999_999)
    with pytest.raises(ImageError, match=r"1\.0 megapixels, more than the 0\.999999 megapixel limit"):
        runtime.image_limits.open(photo)
    runtime.image_limits = ImageLimits(max_bytes=photo.stat().st_size - 1)
    with pytest.raises(ImageError, match="MiB limit"):
        runtime.image_limits.open(photo)
    runtime.image_limits = ImageLimits(max_total_pixels=2_500_000)
    with pytest.raises(ImageError, match=r"Images 1 to 3 hold 3\.0 megapixels together"):
        runtime.image_limits.open_all([photo] * 3)


def test_odd_but_valid_images_become_the_right_rgb(runtime, client):
    for label, data, expected in odd_valid_images():
        opened = np.asarray(runtime.image_limits.open(data))
        assert opened.dtype == np.uint8 and np.array_equal(opened, expected), label
        answer = client.post(api_url("restyle"), json={"image": b64(data), "args": {"enabled": False}})
        assert answer.status_code == 200, (label, answer.text)
        returned = Image.open(io.BytesIO(base64.b64decode(answer.json()["image"])))
        assert np.array_equal(np.asarray(returned.convert("RGB")), expected), label


def test_api_answers_422_with_a_sentence_and_keeps_serving(runtime, client, cases, portrait):
    valid = b64(portrait.read_bytes())
    aligned = {"references_are_aligned": True, "name": "never"}
    for case in cases:
        hostile = b64(case.path.read_bytes())
        reason = case.reason if hostile else "is empty"  # no bytes: an empty base64 string
        with unchanged(runtime):
            answer = client.post(api_url("restyle"), json={"image": hostile, "args": {"pack": "keep"}})
            assert_api_refused(answer, 422, "The image ", reason)
            answer = client.post(api_url("train"), json={"references": [valid, hostile], "args": aligned})
            assert_api_refused(answer, 422, "Reference 2 ", reason)
            answer = client.post(api_url("train"), json={"references": [valid], "test_face": hostile, "args": aligned})
            assert_api_refused(answer, 422, "The test face ", reason)
        assert client.get(api_url("version")).status_code == 200
    runtime.image_limits = ImageLimits(max_pixels=1_000_000, max_total_pixels=2_000_000)
    megapixel = b64(png_bomb(1000, 1000))
    answer = client.post(api_url("train"), json={"references": [megapixel] * 3, "args": aligned})
    assert_api_refused(answer, 422, "References 1 to 3 hold 3.0 megapixels together")


def test_ui_handlers_show_a_sentence(runtime, handlers, cases, portrait):
    for case in cases:
        with unchanged(runtime):
            status, result, crops = handlers.restyle(str(case.path), "keep", *RESTYLE_OPTIONS)
            assert_ui_refused(status, case.path.name, case.reason)
            assert (result, crops) == (None, [])
            status, _ = handlers.prepare([str(portrait), str(case.path)], None, True)
            assert_ui_refused(status, f"Reference 2 ({case.path.name})", case.reason)
            status, _ = handlers.prepare([str(portrait)], str(case.path), True)
            assert_ui_refused(status, "The test face", case.reason)
            status, *_ = handlers.try_on_upload(str(case.path), "keep")  # the Packs tab's test face
            assert_ui_refused(status, "The test face", case.reason)
            updates = list(handlers.train([str(case.path)], None, False, "never", True, 0, 1, 1.0, False, "discriminator",
                                          0.0, 0.002, -1))  # fmt: skip
            assert len(updates) == 1
            assert_ui_refused(updates[0][0], case.reason)


def test_gradio_hands_uploads_over_undecoded(runtime, jobs, tmp_path):
    """The tab's image inputs are file uploads: gradio stores the bytes and our gate reads the header first."""
    blocks = build_tab(runtime, jobs)
    dependencies = blocks.config["dependencies"]  # gradio 3 and 4 alike (Blocks.dependencies is gone in 4)
    fn_index = next(i for i, dependency in enumerate(dependencies) if dependency["api_name"] == "jojogan_restyle")
    image_inputs = [blocks.blocks[dependencies[fn_index]["inputs"][0]]]
    image_inputs += [component for component in blocks.blocks.values() if getattr(component, "elem_id", None)
                     in ("jojogan_test_face", "jojogan_references")]  # fmt: skip
    assert len(image_inputs) == 3 and all(isinstance(component, gr.File) for component in image_inputs)
    assert not any(isinstance(c, gr.Image) and c.interactive is not False for c in blocks.blocks.values())

    if not gr.__version__.startswith("3."):
        pytest.skip("gradio 4's internal upload payload differs; tests/test_app.py drives gradio 4 through its client")
    # the full gradio pipeline (preprocess → handler → postprocess), as for a request to /api/jojogan_restyle
    bomb = png_declaring(12_000, 12_000)  # 432 MB once decoded as RGB: gradio's own gr.Image would decode it
    upload = {"name": "bomb.png", "data": "data:image/png;base64," + b64(bomb), "is_file": False}
    started = time.perf_counter()
    with unchanged(runtime):
        output = asyncio.run(blocks.process_api(fn_index, [upload, "keep", *RESTYLE_OPTIONS], state={}))
    assert time.perf_counter() - started < 2.0
    assert_ui_refused(output["data"][0], "bomb.png is 12000x12000 = 144.0 megapixels")


def test_cli_prints_one_line_and_exits_1(runtime, capsys, cases, portrait, tmp_path):
    for case in cases:
        with unchanged(runtime):
            code, _, err = run_cli(runtime, capsys, "restyle", str(case.path), "--pack", "keep", "-o", str(tmp_path))
            assert_cli_refused(code, err, case.path.name, case.reason)
            code, _, err = run_cli(runtime, capsys, "train", str(portrait), str(case.path), "--name", "never",
                                   "--iterations", "1", "--references-are-aligned")  # fmt: skip
            assert_cli_refused(code, err, f"Reference 2 ({case.path.name})", case.reason)
    code, _, err = run_cli(runtime, capsys, "--max-image-pixels", "100", "restyle", str(portrait), "--pack", "keep")
    assert_cli_refused(code, err, "more than the 0.0001 megapixel limit")


def test_cli_process_refuses_a_bomb(runtime, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(12_000, 12_000))  # past Pillow's warning size, under its own error size
    with unchanged(runtime):
        result = run_cli_process(runtime, "restyle", str(bomb), "--pack", "keep", "-o", str(tmp_path))
    assert_cli_refused(result.returncode, result.stderr, "bomb.png is 12000x12000", "megapixel limit")
