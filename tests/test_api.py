"""The REST API through FastAPI's TestClient on tiny real models: every route, its answers and its errors."""

import argparse
import base64
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import save_file

from jojogan_ext import __version__
from jojogan_ext.api import API_PREFIX, MAX_REFERENCES, create_router
from jojogan_ext.args import CompactArgs, MixRecipe, RestyleArgs, SwapRecipe, TrainArgs, schema
from jojogan_ext.jobs import TrainingJobs
from jojogan_ext.nn.stylegan2 import Generator
from jojogan_ext.packs import load_pack, save_pack
from jojogan_ext.runtime import Runtime

from tiny_models import styled_generator

ACTIVE = ("queued", "running", "saving")


def make_client(runtime: Runtime, jobs: TrainingJobs, **limits) -> TestClient:
    app = FastAPI()
    app.include_router(create_router(runtime, jobs, **limits), prefix=API_PREFIX)
    return TestClient(app)


@pytest.fixture()
def api(tiny_runtime):
    """(client, runtime, jobs); a training still running at the end is cancelled and awaited."""
    jobs = TrainingJobs(tiny_runtime)
    yield make_client(tiny_runtime, jobs), tiny_runtime, jobs
    current = jobs.current()
    if current is not None and current.active:
        jobs.cancel(current.id)
        jobs.wait(current.id, timeout=60)


def url(path: str) -> str:
    return f"{API_PREFIX}/{path}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_image(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


@pytest.fixture()
def reference(fixtures) -> str:
    return b64((fixtures / "align" / "A_full_256.png").read_bytes())


@pytest.fixture()
def astronaut_b64(fixtures) -> str:
    return b64((fixtures / "align" / "astronaut.png").read_bytes())


@pytest.fixture()
def bold(api) -> Path:
    """A pack 'bold' (title 'Bold', float32) in the runtime's library."""
    _, runtime, _ = api
    preview = Image.new("RGB", (64, 64), (200, 30, 30))
    return save_pack(
        runtime.packs.new_path("bold"),
        styled_generator(runtime.base.generator),
        base=runtime.base.generator,
        title="Bold",
        dtype="float32",
        preview=preview,
    )


def wait_for_end(client: TestClient, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(url(f"train/{job_id}")).json()
        if status["state"] not in ACTIVE:
            return status
        time.sleep(0.05)
    raise AssertionError(f"training {job_id} did not end within {timeout} s")


def test_version_and_schema(api):
    client, runtime, _ = api
    version = client.get(url("version")).json()
    assert version["version"] == __version__ and version["device"] == str(runtime.device)
    schemas = client.get(url("schema")).json()
    assert schemas == {
        "TrainArgs": schema(TrainArgs),
        "RestyleArgs": schema(RestyleArgs),
        "SwapRecipe": schema(SwapRecipe),
        "MixRecipe": schema(MixRecipe),
        "CompactArgs": schema(CompactArgs),
    }


def test_list_show_download_and_delete_a_pack(api, bold):
    client, runtime, _ = api
    listing = client.get(url("packs")).json()
    assert [pack["name"] for pack in listing["packs"]] == ["bold"] and listing["problems"] == []
    summary = listing["packs"][0]
    assert summary["title"] == "Bold" and summary["has_preview"] and summary["size_bytes"] == bold.stat().st_size
    assert "modelspec.thumbnail" not in summary["metadata"]
    assert json.loads(summary["metadata"]["jojogan.config"])["size"] == runtime.base.generator.size
    with_thumbnails = client.get(url("packs"), params={"thumbnails": True}).json()["packs"][0]
    assert with_thumbnails["metadata"]["modelspec.thumbnail"].startswith("data:image/png;base64,")

    assert client.get(url("packs/bold")).json() == summary
    download = client.get(url("packs/bold/file"))
    assert download.status_code == 200 and download.content == bold.read_bytes()
    assert "bold.safetensors" in download.headers["content-disposition"]

    assert client.delete(url("packs/bold")).json() == {"deleted": "bold"}
    assert not bold.exists() and not bold.with_name("bold.preview.png").exists()
    for method, path in [("get", "packs/bold"), ("get", "packs/bold/file"), ("delete", "packs/bold")]:
        answer = getattr(client, method)(url(path))
        assert answer.status_code == 404 and "no style pack named 'bold'" in answer.json()["detail"]
    unsafe = client.get(url("packs/con"))  # a reserved device name on Windows
    assert unsafe.status_code == 422 and "cannot be used as a style pack name" in unsafe.json()["detail"]


def test_download_compact_leaves_the_library_as_it_is(api, bold, tmp_path):
    client, runtime, _ = api
    before = bold.read_bytes()
    download = client.get(url("packs/bold/file"), params={"compact": True})
    assert download.status_code == 200 and "bold.safetensors" in download.headers["content-disposition"]
    assert len(download.content) < len(before) and bold.read_bytes() == before
    assert sorted(path.name for path in runtime.packs.folder.iterdir()) == ["bold.preview.png", "bold.safetensors"]
    (tmp_path / "bold.safetensors").write_bytes(download.content)
    compact = load_pack(tmp_path / "bold.safetensors")
    assert compact.is_compact and json.loads(compact.metadata["jojogan.compression"])["measured"]["psnr"] >= 40
    assert compact.generator(runtime.base.generator).size == runtime.base.generator.size
    uploaded = client.post(url("packs"), params={"name": "shared"}, content=download.content)
    assert uploaded.status_code == 201 and uploaded.json()["metadata"]["jojogan.format_version"] == "2"
    again = client.get(url("packs/shared/file"), params={"compact": True})  # compact already: the file as it is
    assert again.content == download.content
    assert client.get(url("packs/nope/file"), params={"compact": True}).status_code == 404


def test_upload_a_pack_then_refuse_its_name_unless_overwriting(api, bold):
    client, runtime, _ = api
    data = bold.read_bytes()
    created = client.post(url("packs"), params={"name": "copy"}, content=data)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "copy" and created.json()["metadata"]["modelspec.title"] == "Bold"
    copy = runtime.packs.existing("copy")
    assert copy.read_bytes() == data and copy.with_name("copy.preview.png").is_file()
    again = client.post(url("packs"), params={"name": "copy"}, content=data)
    assert again.status_code == 422 and "already exists" in again.json()["detail"]
    replaced = client.post(url("packs"), params={"name": "copy", "overwrite": True}, content=data)
    assert replaced.status_code == 201
    assert [pack["name"] for pack in client.get(url("packs")).json()["packs"]] == ["bold", "copy"]


def test_upload_a_jojogan_pt_converts_it(api, tmp_path):
    client, runtime, _ = api
    styled = styled_generator(runtime.base.generator, seed=5)
    source = tmp_path / "style.pt"
    torch.save({"g": styled.state_dict()}, source)
    created = client.post(url("packs"), params={"name": "converted"}, content=source.read_bytes())
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["jojogan.source"].startswith("converted from")
    pack = load_pack(runtime.packs.existing("converted"))
    for key, value in styled.synthesis_parameters().items():
        torch.testing.assert_close(pack.tensors[key].float(), value.detach(), atol=2e-3, rtol=1e-3)  # float16
    preview = Image.open(runtime.packs.existing("converted").with_name("converted.preview.png"))
    assert preview.size == (runtime.base.generator.size,) * 2


def test_uploads_that_are_not_packs_are_refused(api, tmp_path):
    client, runtime, _ = api
    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.lora_up.weight": torch.zeros(4, 4)}, str(lora), metadata={"ss_network_dim": "4"})
    other = Generator(32, style_dim=runtime.base.generator.style_dim, n_mlp=2, channel_max=8)
    foreign = save_pack(tmp_path / "foreign.safetensors", other, base=other, title="foreign")
    not_tensors, with_code = tmp_path / "not_tensors.pt", tmp_path / "with_code.pt"
    torch.save({"g": {"conv1.conv.weight": [1, 2, 3]}}, not_tensors)
    torch.save({"g": argparse.Namespace(payload="would run code on unpickling")}, with_code)
    cases = [
        (b"definitely not a model file", "neither a style pack"),
        (b"", "empty"),
        (lora.read_bytes(), "not a JoJoGAN style pack"),
        (foreign.read_bytes(), "does not fit the base model"),
        (not_tensors.read_bytes(), "is not a dict of tensors"),
        (with_code.read_bytes(), "could run code"),
    ]
    for body, expected in cases:
        answer = client.post(url("packs"), params={"name": "bad"}, content=body)
        assert answer.status_code == 422 and expected in answer.json()["detail"], (expected, answer.text)
    assert client.get(url("packs")).json()["packs"] == []
    assert not any(runtime.packs.folder.iterdir())  # nothing half-written was left behind
    small = make_client(runtime, TrainingJobs(runtime), max_upload_bytes=1000)
    too_big = small.post(url("packs"), params={"name": "big"}, content=b"\0" * 2000)
    assert too_big.status_code == 413 and "larger than" in too_big.json()["detail"]


def test_restyle_returns_the_image_and_the_faces(api, bold, astronaut_b64, fixtures):
    client, _, _ = api
    original = np.asarray(Image.open(fixtures / "align" / "astronaut.png").convert("RGB"), dtype=np.int16)
    # random detector weights: a low threshold finds "faces" on a regular grid; take the largest
    args = {"pack": "bold", "confidence": 0.05, "max_faces": 1}
    answer = client.post(url("restyle"), json={"image": astronaut_b64, "args": args})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["message"] == "Restyled 1 face with 'bold'."
    assert len(body["faces"]) == 1 and body["faces"][0]["index"] == 0
    assert len(body["faces"][0]["box"]) == 4 and 0.05 <= body["faces"][0]["score"] <= 1
    result = png_image(body["image"])
    assert result.size == (original.shape[1], original.shape[0])
    changed = np.abs(np.asarray(result.convert("RGB"), dtype=np.int16) - original).max(axis=2)
    assert changed.max() > 10 and (changed > 0).mean() < 0.5  # the face was repainted, the rest kept

    disabled = client.post(url("restyle"), json={"image": astronaut_b64, "args": {**args, "enabled": False}}).json()
    assert disabled["faces"] == [] and "disabled" in disabled["message"]
    assert np.array_equal(np.asarray(png_image(disabled["image"]).convert("RGB"), dtype=np.int16), original)


def test_restyle_errors_are_sentences(api, bold, astronaut_b64):
    client, runtime, _ = api
    not_an_image = b64(b"hello, I am text")
    cases = [
        ({"image": "@@not base64@@", "args": {"pack": "bold"}}, 422, "not valid base64"),
        ({"image": not_an_image, "args": {"pack": "bold"}}, 422, "not an image"),
        ({"image": "", "args": {"pack": "bold"}}, 422, "empty"),
        ({"image": astronaut_b64, "args": {"pack": "bold", "bogus": 1}}, 422, "args.bogus"),
        ({"image": astronaut_b64, "args": {"pack": "bold", "strength": 2}}, 422, "args.strength"),
        ({"image": astronaut_b64, "extra": True}, 422, "extra"),
        ({"args": {"pack": "bold"}}, 422, "image"),
        ({"image": astronaut_b64, "args": {}}, 422, "Choose a style pack"),
        ({"image": astronaut_b64, "args": {"pack": "missing"}}, 404, "no style pack named 'missing'"),
    ]
    for body, status, expected in cases:
        answer = client.post(url("restyle"), json=body)
        detail = answer.json()["detail"]
        assert answer.status_code == status and isinstance(detail, str) and expected in detail, (body, answer.text)
    for raw, expected in [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object")]:
        answer = client.post(url("restyle"), content=raw, headers={"content-type": "application/json"})
        assert answer.status_code == 422 and expected in answer.json()["detail"]
    small = make_client(runtime, TrainingJobs(runtime), max_json_bytes=1000)
    too_big = small.post(url("restyle"), json={"image": astronaut_b64, "args": {"pack": "bold"}})
    assert too_big.status_code == 413


def test_train_to_completion_lists_the_new_pack(api, reference):
    client, runtime, _ = api
    args = {"name": "api style", "iterations": 2, "references_are_aligned": True, "seed": 3}
    started = client.post(url("train"), json={"references": [reference], "args": args})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["total"] == 2 and job["args"]["name"] == "api style" and job["state"] in ACTIVE
    final = wait_for_end(client, job["id"])
    assert final["state"] == "done", final
    assert (final["step"], final["total"], final["pack"]) == (2, 2, "api style")
    assert isinstance(final["loss"], float) and "Saved style pack" in final["message"]
    assert [pack["name"] for pack in client.get(url("packs")).json()["packs"]] == ["api style"]
    preview = png_image(client.get(url(f"train/{job['id']}"), params={"preview": True}).json()["preview"])
    assert preview.size == (runtime.base.generator.size,) * 2
    assert json.loads(load_pack(runtime.packs.existing("api style")).metadata["jojogan.training"])["seed"] == 3


def test_one_training_at_a_time_and_cancel(api, reference):
    client, runtime, _ = api
    body = {"references": [reference], "args": {"name": "long", "iterations": 2000, "references_are_aligned": True}}
    first = client.post(url("train"), json=body)
    assert first.status_code == 202
    second = client.post(url("train"), json={**body, "args": {**body["args"], "name": "other"}})
    assert second.status_code == 409 and "already training" in second.json()["detail"]
    cancelled = client.post(url(f"train/{first.json()['id']}/cancel"))
    assert cancelled.status_code == 200 and cancelled.json()["id"] == first.json()["id"]
    final = wait_for_end(client, first.json()["id"])
    assert final["state"] == "cancelled" and final["pack"] is None and final["step"] < 2000
    assert client.get(url("packs")).json()["packs"] == [] and not runtime.packs.path_for("long").exists()
    for answer in (client.get(url("train/nope")), client.post(url("train/nope/cancel"))):
        assert answer.status_code == 404 and "no training job 'nope'" in answer.json()["detail"]


def test_train_validation(api, reference):
    client, _, _ = api
    aligned = {"references_are_aligned": True}
    cases = [
        ({"references": [], "args": aligned}, "1 to"),
        ({"references": [reference] * (MAX_REFERENCES + 1), "args": aligned}, f"1 to {MAX_REFERENCES}"),
        ({"references": ["%%%"], "args": aligned}, "Reference 1 is not valid base64"),
        ({"references": [reference, b64(b"text")], "args": aligned}, "Reference 2"),
        ({"references": [reference], "test_face": b64(b"x"), "args": aligned}, "The test face"),
        ({"references": [reference], "args": {**aligned, "iterations": 0}}, "args.iterations"),
        ({"references": [reference], "args": {**aligned, "name": "con"}}, "cannot be used as a style pack name"),
        ({"args": aligned}, "references"),
    ]
    for body, expected in cases:
        answer = client.post(url("train"), json=body)
        assert answer.status_code == 422 and expected in answer.json()["detail"], (expected, answer.text)


def test_missing_base_weights_answer_503(tmp_path, bold):
    runtime = Runtime(tmp_path / "empty_models")
    client = make_client(runtime, TrainingJobs(runtime))
    answer = client.post(url("packs"), params={"name": "bold"}, content=bold.read_bytes())
    assert answer.status_code == 503
    assert "stylegan2-ffhq-config-f.pt" in answer.json()["detail"] and "missing" in answer.json()["detail"]


def test_compose_a_pack_answers_201_with_its_summary(api, bold):
    client, runtime, jobs = api
    recipe = {"mode": "swap", "low": "base", "high": "bold", "at": 8, "transition": 0}
    created = client.post(url("packs/compose"), json={"name": "bold texture", "recipe": recipe})
    assert created.status_code == 201, created.text
    summary = created.json()
    assert summary["name"] == "bold texture" and summary["has_preview"]
    assert summary["metadata"]["jojogan.source"] == "composed"
    provenance = json.loads(summary["metadata"]["jojogan.recipe"])
    assert provenance["recipe"] == recipe and [s["name"] for s in provenance["sources"]] == ["base", "bold"]
    pack = load_pack(runtime.packs.existing("bold texture"))
    assert pack.tensors["input.input"].dtype == getattr(torch, jobs.pack_dtype)  # the training precision
    bold_tensors = load_pack(bold).tensors
    assert torch.equal(
        pack.tensors["to_rgbs.3.bias"], bold_tensors["to_rgbs.3.bias"].to(pack.tensors["input.input"].dtype)
    )
    assert client.get(url("packs/bold texture")).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"name": "x", "recipe": {"mode": "mix", "weights": {"bold": 1, "ghost": 1}}}, 404, "'ghost'"),
        ({"name": "bold", "recipe": {"mode": "mix", "weights": {"bold": 1}}}, 409, "already exists"),
        ({"name": "x", "recipe": {"mode": "mix", "weights": {"bold": -1}}}, 422, "weights.bold"),
        ({"name": "x", "recipe": {"mode": "swap", "low": "bold", "high": "base", "at": 12}}, 422, "at"),
        ({"name": "x", "recipe": {"mode": "swap", "low": "bold", "high": "base", "at": 128}}, 422, "64 px"),
        ({"name": "x", "recipe": {"mode": "swap", "low": "alien", "high": "base", "at": 16}}, 422, "another base"),
        ({"name": "x", "recipe": {"mode": "twist"}}, 422, "mode"),
        ({"name": "x", "recipe": {"mode": "mix", "weights": {"bold": 1}}, "extra": 1}, 422, "extra"),
    ],
)
def test_compose_errors(api, bold, body, status, text):
    client, runtime, _ = api
    save_pack(runtime.packs.new_path("alien"), styled_generator(runtime.base.generator), base=Generator(64, style_dim=128, n_mlp=2, channel_max=16), title="Alien")  # fmt: skip
    answer = client.post(url("packs/compose"), json=body)
    assert answer.status_code == status and text in answer.json()["detail"], answer.text
    assert not (runtime.packs.folder / "x.safetensors").exists()
