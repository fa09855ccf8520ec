"""The extension inside a running AUTOMATIC1111 web UI, over HTTP: tab, settings, routes, scripts, queue lock.

Runs only when JOJOGAN_WEBUI_URL names a web UI started with `--api` and a checkpoint, with this extension
installed and tiny models configured (tests/webui/README.md says how). Trains one 2-step style pack through
the API and deletes it at the end; every other pack and file is left alone.
"""

import base64
import io
import json
import os
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from jojogan_ext import __version__
from jojogan_ext.args import INFOTEXT_FIELDS, RestyleArgs, TrainArgs, schema
from jojogan_ext.integration import NOTE_LABEL, SETTINGS

WEBUI_URL = os.environ.get("JOJOGAN_WEBUI_URL", "").rstrip("/")
WEBUI_LOG = os.environ.get("JOJOGAN_WEBUI_LOG", "")
pytestmark = [
    pytest.mark.webui,
    pytest.mark.skipif(
        not WEBUI_URL, reason="set JOJOGAN_WEBUI_URL to a running web UI with this extension (tests/webui/README.md)"
    ),
]

TIMEOUT = 120.0
# A 64×64 noise image from the tiny checkpoint, 1 step: fast, and the same pixels for the same seed.
TXT2IMG = {"prompt": "a portrait photo", "steps": 1, "width": 64, "height": 64, "seed": 1234, "sampler_name": "Euler"}
# Low thresholds, so that the tiny random detector reports faces in noise (the tiny models' documented behaviour).
FIND_FACES = {"confidence": 0.05, "min_face_size": 8}
ACTIVE = ("queued", "running", "saving")


def b64_file(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def pixels(data: str) -> np.ndarray:
    """A base64 PNG from the web UI as an RGB array [H, W, 3]."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jojogan/v1/train/{job_id}").json()
        if job["state"] not in ACTIVE or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def txt2img(client: httpx.Client, alwayson: dict | None = None, **extra) -> httpx.Response:
    body = {**TXT2IMG, **extra}
    if alwayson is not None:
        body["alwayson_scripts"] = alwayson
    return client.post("/sdapi/v1/txt2img", json=body)


@pytest.fixture(scope="module")
def client():
    with httpx.Client(base_url=WEBUI_URL, timeout=TIMEOUT) as session:
        yield session


@pytest.fixture(scope="module")
def is_forge(client) -> bool:
    """Forge, told by a route only it serves (its additional-modules list), not by a version string."""
    return client.get("/sdapi/v1/sd-modules").status_code == 200


# Forge's ControlNet builds the options model before extensions add their settings (tests/webui/README.md).
FORGE_OPTIONS_BUG = "Forge's own bug: GET /sdapi/v1/options drops extension settings"


@pytest.fixture(scope="module")
def reference(fixtures) -> str:
    return b64_file(fixtures / "align" / "A_full_256.png")


@pytest.fixture(scope="module")
def pack(client, reference):
    """A style pack trained for 2 steps through the web UI's API; deleted afterwards."""
    name = f"webui_test_{uuid.uuid4().hex[:8]}"
    args = {"name": name, "iterations": 2, "references_are_aligned": True, "seed": 7}
    started = client.post("/jojogan/v1/train", json={"references": [reference], "args": args})
    assert started.status_code == 202, started.text
    job = wait_for_job(client, started.json()["id"])
    assert job["state"] == "done", job
    assert job["pack"] == name
    yield name
    client.delete(f"/jojogan/v1/packs/{name}")


# --- the extension is loaded -----------------------------------------------------------------------


def test_version_is_this_checkout(client):
    response = client.get("/jojogan/v1/version")
    assert response.status_code == 200
    assert response.json()["version"] == __version__
    assert response.json()["api"] == "v1"


def test_schema_matches_the_argument_models(client):
    response = client.get("/jojogan/v1/schema")
    assert response.status_code == 200
    served = response.json()
    assert set(served["TrainArgs"]["properties"]) == set(schema(TrainArgs)["properties"])
    assert set(served["RestyleArgs"]["properties"]) == set(schema(RestyleArgs)["properties"])


def test_settings_are_registered(client, is_forge):
    if is_forge:
        pytest.skip(FORGE_OPTIONS_BUG)  # the settings tab still has them: test_ui_has_tab_settings_and_accordions
    options = client.get("/sdapi/v1/options")
    assert options.status_code == 200
    assert {setting.key for setting in SETTINGS} <= set(options.json())


def test_ui_has_tab_settings_and_accordions(client):
    components = client.get("/config").json()["components"]
    tabs = [c["props"] for c in components if c["type"] == "tabitem"]
    assert any(tab.get("id") == "jojogan" and tab.get("label") == "JoJoGAN" for tab in tabs)
    assert any(tab.get("elem_id") == "settings_jojogan" for tab in tabs)
    elem_ids = {c["props"].get("elem_id") for c in components}
    assert {f"setting_{setting.key}" for setting in SETTINGS} <= elem_ids
    # the txt2img/img2img accordions and the Extras accordion (the postprocessing script is registered)
    assert {"jojogan_txt2img-checkbox", "jojogan_img2img-checkbox", "jojogan_extras-checkbox"} <= elem_ids


def test_scripts_are_listed_as_alwayson(client):
    listed = client.get("/sdapi/v1/scripts").json()
    assert "jojogan" in listed["txt2img"]
    assert "jojogan" in listed["img2img"]
    infos = [s for s in client.get("/sdapi/v1/script-info").json() if s["name"] == "jojogan"]
    assert {info["is_img2img"] for info in infos} == {False, True}
    # the arguments are the accordion's controls, its switch first and off
    assert all(info["is_alwayson"] and info["args"][0]["value"] is False for info in infos)


# --- the /jojogan/v1 routes through the web UI's server ----------------------------------------------


def test_packs_list_get_and_file(client, pack):
    listed = client.get("/jojogan/v1/packs").json()
    summary = next(item for item in listed["packs"] if item["name"] == pack)
    assert summary["metadata"]["modelspec.architecture"].endswith("/jojogan")
    one = client.get(f"/jojogan/v1/packs/{pack}")
    assert one.status_code == 200
    assert one.json()["size_bytes"] == summary["size_bytes"]
    assert "modelspec.thumbnail" not in one.json()["metadata"]
    assert (
        client.get(f"/jojogan/v1/packs/{pack}", params={"thumbnail": True})
        .json()["metadata"]["modelspec.thumbnail"]
        .startswith("data:image/png;base64,")
    )
    download = client.get(f"/jojogan/v1/packs/{pack}/file")
    assert download.status_code == 200
    assert len(download.content) == summary["size_bytes"]
    missing = client.get("/jojogan/v1/packs/no_such_pack_here")
    assert missing.status_code == 404
    assert "no style pack" in missing.json()["detail"]


def test_restyle_route(client, pack, fixtures):
    image = b64_file(fixtures / "align" / "astronaut.png")
    original = np.asarray(Image.open(fixtures / "align" / "astronaut.png").convert("RGB"))
    restyled = client.post("/jojogan/v1/restyle", json={"image": image, "args": {"pack": pack, **FIND_FACES}})
    assert restyled.status_code == 200, restyled.text
    body = restyled.json()
    assert pixels(body["image"]).shape == original.shape
    assert body["faces"], body["message"]
    assert not np.array_equal(pixels(body["image"]), original)
    disabled = client.post("/jojogan/v1/restyle", json={"image": image, "args": {"enabled": False}})
    assert np.array_equal(pixels(disabled.json()["image"]), original)
    invalid = client.post("/jojogan/v1/restyle", json={"image": image, "args": {"pack": pack, "strength": 5}})
    assert invalid.status_code == 422
    assert invalid.json()["detail"].startswith("Invalid RestyleRequest")


def start_long_training(client: httpx.Client, reference: str, name: str) -> str:
    """Start a 2000-step training (long enough to poll, lock and cancel); returns its job id."""
    started = client.post(
        "/jojogan/v1/train",
        json={"references": [reference], "args": {"name": name, "iterations": 2000, "references_are_aligned": True}},
    )
    assert started.status_code == 202, started.text
    return started.json()["id"]


def test_train_poll_and_cancel(client, reference):
    name = f"webui_cancel_{uuid.uuid4().hex[:8]}"
    job_id = start_long_training(client, reference, name)
    try:
        second = client.post(
            "/jojogan/v1/train", json={"references": [reference], "args": {"name": f"{name}_2", "iterations": 2}}
        )
        assert second.status_code == 409
        polled = client.get(f"/jojogan/v1/train/{job_id}")
        assert polled.status_code == 200
        assert polled.json()["total"] == 2000
        assert client.post(f"/jojogan/v1/train/{job_id}/cancel").status_code == 200
    finally:
        client.post(f"/jojogan/v1/train/{job_id}/cancel")
        job = wait_for_job(client, job_id)
    assert job["state"] == "cancelled", job
    assert job["step"] < 2000
    assert client.get(f"/jojogan/v1/packs/{name}").status_code == 404
    assert client.get("/jojogan/v1/train/no_such_job").status_code == 404


# --- txt2img/img2img scripts and Extras -----------------------------------------------------------


def test_txt2img_alwayson_args_restyle_like_the_route(client, pack):
    plain = txt2img(client)
    assert plain.status_code == 200, plain.text
    generated = plain.json()["images"][0]
    args = {"pack": pack, "strength": 0.8, **FIND_FACES}
    expected = client.post("/jojogan/v1/restyle", json={"image": generated, "args": args}).json()
    restyled = txt2img(client, {"JoJoGAN": {"args": [{"enabled": True, **args}]}})
    assert restyled.status_code == 200, restyled.text
    images = restyled.json()["images"]
    assert len(images) == 1
    assert np.array_equal(pixels(images[0]), pixels(expected["image"]))
    extra = json.loads(restyled.json()["info"])["extra_generation_params"]
    if expected["faces"]:
        assert extra[INFOTEXT_FIELDS["pack"]] == pack
        assert extra[INFOTEXT_FIELDS["strength"]] == "0.8"
        assert not np.array_equal(pixels(images[0]), pixels(generated))
    else:
        assert INFOTEXT_FIELDS["pack"] not in extra


def test_img2img_alwayson_args_reach_the_script(client, pack, reference):
    response = client.post(
        "/sdapi/v1/img2img",
        json={
            **TXT2IMG,
            "init_images": [reference],
            "denoising_strength": 0.1,
            "alwayson_scripts": {"jojogan": {"args": [{"pack": pack, **FIND_FACES}]}},  # title is case-insensitive
        },
    )
    assert response.status_code == 200, response.text
    generated = response.json()["images"][0]
    plain = client.post(
        "/sdapi/v1/img2img", json={**TXT2IMG, "init_images": [reference], "denoising_strength": 0.1}
    ).json()["images"][0]
    expected = client.post("/jojogan/v1/restyle", json={"image": plain, "args": {"pack": pack, **FIND_FACES}}).json()
    assert np.array_equal(pixels(generated), pixels(expected["image"]))


@pytest.mark.parametrize(
    "alwayson",
    [
        None,
        {"JoJoGAN": {"args": [{"enabled": False, "pack": "whatever", **FIND_FACES}]}},
        {"JoJoGAN": {"args": [{"enabled": True, "pack": "whatever", "strength": 5}]}},  # invalid: logged, skipped
        {"JoJoGAN": {"args": [True, "whatever"]}},  # positional control values: no such pack, kept
    ],
    ids=["no-args", "disabled", "invalid-strength", "positional-list"],
)
def test_txt2img_without_valid_args_keeps_the_image(client, alwayson):
    plain = txt2img(client).json()["images"][0]
    response = txt2img(client, alwayson)
    assert response.status_code == 200, response.text
    assert np.array_equal(pixels(response.json()["images"][0]), pixels(plain))
    assert INFOTEXT_FIELDS["pack"] not in response.json()["info"]


def jojogan_log_lines(request) -> list[str]:
    """The web UI's "JoJoGAN: …" log lines written while `request()` ran."""
    log = Path(WEBUI_LOG)
    start = log.stat().st_size
    response = request()
    assert response.status_code == 200, response.text
    time.sleep(0.5)  # the web UI process writes its log unbuffered, but give it a moment
    with log.open("rb") as file:
        file.seek(start)
        lines = file.read().decode(errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip().startswith("JoJoGAN:")]


@pytest.mark.skipif(not WEBUI_LOG, reason="set JOJOGAN_WEBUI_LOG to the web UI's log file to check its lines")
def test_invalid_args_give_one_log_line(client, pack):
    lines = jojogan_log_lines(lambda: txt2img(client, {"JoJoGAN": {"args": [{"pack": pack, "strength": 5}]}}))
    assert len(lines) == 1
    assert lines[0].startswith("JoJoGAN: Invalid RestyleArgs: strength")


@pytest.mark.skipif(not WEBUI_LOG, reason="set JOJOGAN_WEBUI_LOG to the web UI's log file to check its lines")
def test_infotext_switches_restyling_on(client, pack):
    infotext = f"a portrait photo\nSteps: 1, Seed: 1234, Size: 64x64, {INFOTEXT_FIELDS['pack']}: {pack}"
    plain = txt2img(client).json()["images"][0]
    expected = client.post("/jojogan/v1/restyle", json={"image": plain, "args": {"pack": pack}}).json()
    lines = jojogan_log_lines(lambda: txt2img(client, infotext=infotext, styles=[]))  # Forge needs "styles"
    assert lines == [f"JoJoGAN: {expected['message']}"]  # the script ran with that pack and default thresholds
    assert not jojogan_log_lines(lambda: txt2img(client))


def test_extras_single_image_is_a_no_op(client, fixtures):
    """The stock extras API passes None for every extension argument: JoJoGAN must stay off."""
    original = np.asarray(Image.open(fixtures / "align" / "astronaut.png").convert("RGB"))
    response = client.post(
        "/sdapi/v1/extra-single-image",
        json={"image": b64_file(fixtures / "align" / "astronaut.png"), "upscaling_resize": 1},
    )
    assert response.status_code == 200, response.text
    assert np.array_equal(pixels(response.json()["image"]), original)
    assert INFOTEXT_FIELDS["pack"] not in response.json()["html_info"]


# --- long jobs share the web UI's queue ----------------------------------------------------------


def test_training_holds_the_queue_lock(client, reference):
    name = f"webui_lock_{uuid.uuid4().hex[:8]}"
    job_id = start_long_training(client, reference, name)
    finished: dict = {}

    def generate() -> None:
        with httpx.Client(base_url=WEBUI_URL, timeout=TIMEOUT) as other:
            finished["status"] = txt2img(other).status_code

    generation = threading.Thread(target=generate)
    try:
        deadline = time.monotonic() + 60
        while client.get(f"/jojogan/v1/train/{job_id}").json()["step"] < 1:
            assert time.monotonic() < deadline, "the training never started"
            time.sleep(0.1)
        generation.start()
        time.sleep(1.5)  # a 1-step 64×64 txt2img takes well under 0.5 s when the queue is free
        progress = client.get("/sdapi/v1/progress", params={"skip_current_image": True}).json()
        assert "status" not in finished, "txt2img ran while the training held the queue"
        assert progress["state"]["job"] == "JoJoGAN training"
        assert progress["state"]["sampling_steps"] == 2000
        assert 0 < progress["progress"] < 1
    finally:
        client.post(f"/jojogan/v1/train/{job_id}/cancel")
        job = wait_for_job(client, job_id)
        if generation.is_alive():
            generation.join(TIMEOUT)
    assert job["state"] == "cancelled"
    assert finished["status"] == 200  # it ran once the training let go of the queue
    assert client.get("/sdapi/v1/options").status_code == 200  # the web UI is still up


# --- every option in the generation parameters, notes, the models folder ------------------------------


OPTIONS = {**FIND_FACES, "feather": 0.3, "max_faces": 3, "color_match": True}


def generation_params(response) -> dict:
    return json.loads(response.json()["info"])["extra_generation_params"]


def test_every_option_that_differs_from_its_default_is_recorded(client, pack):
    response = txt2img(client, {"JoJoGAN": {"args": [{"pack": pack, **OPTIONS}]}})
    assert response.status_code == 200, response.text
    params = generation_params(response)
    if NOTE_LABEL in params:
        pytest.skip(f"no face was restyled in the tiny image: {params[NOTE_LABEL]}")
    assert params[INFOTEXT_FIELDS["pack"]] == pack and params[INFOTEXT_FIELDS["strength"]] == "1.0"
    assert params[INFOTEXT_FIELDS["feather"]] == "0.3" and params[INFOTEXT_FIELDS["max_faces"]] == "3"
    assert params[INFOTEXT_FIELDS["confidence"]] == "0.05" and params[INFOTEXT_FIELDS["color_match"]] == "True"
    assert INFOTEXT_FIELDS["face_indices"] not in params  # the default (all faces) is left out


def test_pasted_parameters_restore_every_option(client, pack):
    """The API's `infotext` field goes through the script's paste functions, as the UI's paste button does."""
    infotext = (
        f"a portrait photo\nSteps: 1, Seed: 1234, Size: 64x64, JoJoGAN pack: {pack}, JoJoGAN strength: 0.6, "
        "JoJoGAN confidence: 0.05, JoJoGAN min face size: 8, JoJoGAN feather: 0.3"
    )
    plain = txt2img(client).json()["images"][0]
    args = {"pack": pack, "strength": 0.6, "confidence": 0.05, "min_face_size": 8, "feather": 0.3}
    expected = client.post("/jojogan/v1/restyle", json={"image": plain, "args": args}).json()
    pasted = txt2img(client, infotext=infotext, styles=[])  # Forge's infotext path needs "styles" (its own bug)
    assert pasted.status_code == 200, pasted.text
    assert np.array_equal(pixels(pasted.json()["images"][0]), pixels(expected["image"]))


def test_an_unchanged_image_says_why_in_its_generation_parameters(client):
    response = txt2img(client, {"JoJoGAN": {"args": [{"pack": "no_such_pack_here"}]}})
    assert response.status_code == 200, response.text
    note = generation_params(response)[NOTE_LABEL]
    assert "no style pack named 'no_such_pack_here'" in note
    assert NOTE_LABEL in response.json()["info"] and INFOTEXT_FIELDS["pack"] not in generation_params(response)
    enabled_without_pack = txt2img(client, {"JoJoGAN": {"args": [True, ""]}})
    assert "No style pack was chosen" in generation_params(enabled_without_pack)[NOTE_LABEL]


def test_the_models_folder_is_outside_the_extension(client):
    models_dir = client.get("/jojogan/v1/version").json()["models_dir"]
    assert "extensions" not in models_dir.replace("\\", "/").split("/"), models_dir


# --- per-face packs and the X/Y/Z plot axes (issue 16) --------------------------------------------------


@pytest.fixture(scope="module")
def second_pack(client, pack):
    """A second pack, half the first one and half the base model (composed: no training); deleted afterwards."""
    name = f"{pack}_half"
    recipe = {"mode": "mix", "weights": {pack: 1.0, "base": 1.0}}
    made = client.post("/jojogan/v1/packs/compose", json={"name": name, "recipe": recipe})
    assert made.status_code == 201, made.text
    yield name
    client.delete(f"/jojogan/v1/packs/{name}")


def test_txt2img_restyles_each_face_with_its_own_pack(client, pack, second_pack):
    plain = txt2img(client).json()["images"][0]
    args = {"pack": pack, "face_packs": {"1": second_pack}, "max_faces": 2, **FIND_FACES}
    expected = client.post("/jojogan/v1/restyle", json={"image": plain, "args": args}).json()
    assert len(expected["faces"]) == 2, expected["message"]  # the tiny detector finds "faces" in the noise
    assert expected["message"] == f"Restyled 2 faces with '{pack}', '{second_pack}'."
    response = txt2img(client, {"JoJoGAN": {"args": [{"enabled": True, **args}]}})
    assert response.status_code == 200, response.text
    assert np.array_equal(pixels(response.json()["images"][0]), pixels(expected["image"]))
    assert generation_params(response)[INFOTEXT_FIELDS["face_packs"]] == f"1={second_pack}"
    one_pack = client.post("/jojogan/v1/restyle", json={"image": plain, "args": {**args, "face_packs": {}}}).json()
    assert not np.array_equal(pixels(one_pack["image"]), pixels(expected["image"]))  # face 1 looks different
    missing = txt2img(client, {"JoJoGAN": {"args": [{**args, "face_packs": {"1": "no_such_pack_here"}}]}})
    assert "no style pack named 'no_such_pack_here'" in generation_params(missing)[NOTE_LABEL]


def test_pasted_face_packs_restyle_each_face_again(client, pack, second_pack):
    infotext = (
        f"a portrait photo\nSteps: 1, Seed: 1234, Size: 64x64, JoJoGAN pack: {pack}, JoJoGAN strength: 0.9, "
        f'JoJoGAN face packs: "0={second_pack}, 2={pack}", JoJoGAN max faces: 3, JoJoGAN confidence: 0.05, '
        "JoJoGAN min face size: 8"
    )
    plain = txt2img(client).json()["images"][0]
    args = {"pack": pack, "strength": 0.9, "face_packs": {"0": second_pack, "2": pack}, "max_faces": 3, **FIND_FACES}
    expected = client.post("/jojogan/v1/restyle", json={"image": plain, "args": args}).json()
    assert second_pack in expected["message"], expected["message"]
    pasted = txt2img(client, infotext=infotext, styles=[])  # Forge's infotext path needs "styles" (its own bug)
    assert pasted.status_code == 200, pasted.text
    assert np.array_equal(pixels(pasted.json()["images"][0]), pixels(expected["image"]))
    assert generation_params(pasted)[INFOTEXT_FIELDS["face_packs"]] == f"0={second_pack}, 2={pack}"


def xyz_axis_index(client: httpx.Client, label: str) -> int:
    """The position of an axis in txt2img's X/Y/Z plot menu (the API takes axes by index, as the dropdown does)."""
    components = client.get("/config").json()["components"]
    x_type = next(c for c in components if c["props"].get("elem_id") == "script_txt2img_xyz_plot_x_type")
    choices = [choice[0] if isinstance(choice, list) else choice for choice in x_type["props"]["choices"]]
    return choices.index(label)  # gradio 4 lists (label, value) pairs


def test_xyz_plot_grid_of_packs_by_strengths(client, pack, second_pack):
    """A 2x2 grid with the JoJoGAN axes of the host's own X/Y/Z plot; the accordion is off: the axes turn it on."""
    pack_axis, strength_axis = (xyz_axis_index(client, label) for label in ("JoJoGAN pack", "JoJoGAN strength"))
    script_args = [
        pack_axis, "", [pack, second_pack],  # X: from the dropdown of packs
        strength_axis, "0.5, 1", [],  # Y: typed values
        0, "", [],  # Z: nothing
        True, True, False, False, False, False, False, 0, False,  # legend, lone images, no sub-grids, fixed seeds, …
    ]  # fmt: skip
    accordion = {"JoJoGAN": {"args": [{"enabled": False, **FIND_FACES}]}}
    response = txt2img(client, accordion, script_name="x/y/z plot", script_args=script_args)
    assert response.status_code == 200, response.text
    body = response.json()
    info = json.loads(body["info"])
    assert len(body["images"]) == 5  # the grid, then the 4 cells
    assert "X Type: JoJoGAN pack" in info["infotexts"][0] and "Y Type: JoJoGAN strength" in info["infotexts"][0]
    plain = txt2img(client).json()["images"][0]
    cells = [(name, strength) for strength in (0.5, 1.0) for name in (pack, second_pack)]
    for (name, strength), image, text in zip(cells, body["images"][1:], info["infotexts"][1:], strict=True):
        args = {"pack": name, "strength": strength, **FIND_FACES}
        expected = client.post("/jojogan/v1/restyle", json={"image": plain, "args": args}).json()
        assert expected["faces"], expected["message"]
        assert np.array_equal(pixels(image), pixels(expected["image"])), (name, strength)
        assert f"JoJoGAN pack: {name}, JoJoGAN strength: {strength}" in text, text


def test_xyz_plot_swap_resolution_axis(client, pack, second_pack):
    """The swap axis: 'off' is the whole pack, 8 takes the layers up to 8 px from the accordion's 'swap into'."""
    swap_axis = xyz_axis_index(client, "JoJoGAN swap resolution")
    script_args = [
        swap_axis,
        "",
        ["off", "8"],
        0,
        "",
        [],
        0,
        "",
        [],
        True,
        True,
        False,
        False,
        False,
        False,
        False,
        0,
        False,
    ]
    accordion = {"JoJoGAN": {"args": [{"pack": pack, "swap_into": second_pack, **FIND_FACES}]}}
    response = txt2img(client, accordion, script_name="x/y/z plot", script_args=script_args)
    assert response.status_code == 200, response.text
    body, plain = response.json(), txt2img(client).json()["images"][0]
    texts = json.loads(body["info"])["infotexts"][1:]
    for swap_at, image, text in zip((None, 8), body["images"][1:], texts, strict=True):
        args = {"pack": pack, "swap_at": swap_at, "swap_into": second_pack, **FIND_FACES}
        expected = client.post("/jojogan/v1/restyle", json={"image": plain, "args": args}).json()
        assert np.array_equal(pixels(image), pixels(expected["image"])), swap_at
        assert ("JoJoGAN swap resolution: 8" in text) == (swap_at == 8), text
    assert not np.array_equal(pixels(body["images"][1]), pixels(body["images"][2]))
