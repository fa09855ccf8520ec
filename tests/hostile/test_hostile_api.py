"""Hostile requests to the REST API: each a 4xx with a JSON `detail` sentence, and the server keeps serving."""

import base64
import json
import time

from fastapi import FastAPI
from fastapi.testclient import TestClient

from jojogan_ext.api import API_PREFIX, MAX_REFERENCES, create_router
from jojogan_ext.jobs import TrainingJobs

from .conftest import api_url, assert_api_refused, unchanged
from .hostile_inputs import encode, noise_image

ALIGNED = {"references_are_aligned": True, "name": "never"}


def png_b64() -> str:
    return base64.b64encode(encode(noise_image(32, 32), "PNG")).decode()


def raw_json(client: TestClient, route: str, body: bytes):
    return client.post(api_url(route), content=body, headers={"content-type": "application/json"})


def test_bodies_types_and_numbers(runtime, client):
    image = png_b64()
    nested = "[" * 5000 + "]" * 5000
    cases = [
        # (route, JSON body or raw bytes, status, fragment of the detail)
        ("restyle", b"{not json", 422, "not valid JSON"),
        ("restyle", b"", 422, "not valid JSON"),
        ("restyle", b"\xff\xfe\x00", 422, "JSON"),
        ("restyle", b"[1, 2]", 422, "must be a JSON object"),
        ("restyle", nested.encode(), 422, "nests too deeply"),
        ("restyle", b'{"image": ' + b"9" * 5000 + b"}", 422, "number too long"),
        ("restyle", {"image": "@@@ not base64 @@@"}, 422, "not valid base64"),
        ("restyle", {"image": base64.b64encode(b"plain text").decode()}, 422, "not an image"),
        ("restyle", {"image": ""}, 422, "is empty"),
        ("restyle", {"image": ["a list"]}, 422, "image: must be text"),
        ("restyle", {"image": {"a": json.loads("[" * 40 + "]" * 40)}}, 422, "deeper than 32 levels"),
        ("restyle", {"args": {"pack": "keep"}}, 422, "image: is required"),
        ("restyle", {"image": image, "args": "keep"}, 422, "args: must be an object"),
        ("restyle", {"image": image, "args": {"pack": "keep", "strength": "high"}}, 422, "args.strength"),
        ("restyle", {"image": image, "args": {"pack": "keep", "strength": 1e308}}, 422, "args.strength"),
        ("restyle", {"image": image, "args": {"pack": "keep", "strength": -0.5}}, 422, "args.strength"),
        ("restyle", {"image": image, "args": {"pack": "keep", "max_faces": 10**30}}, 422, "args.max_faces"),
        ("restyle", {"image": image, "args": {"pack": "keep", "face_indices": [-1]}}, 422, "args.face_indices"),
        ("restyle", {"image": image, "args": {"pack": "keep", "face_indices": "all"}}, 422, "args.face_indices"),
        ("restyle", {"image": image, "args": {"pack": "keep", "sneaky": True}}, 422, "args.sneaky"),
        (
            "restyle",
            {"image": image, "args": {"pack": "keep", "face_packs": {"9" * 40: "keep"}}},
            422,
            "args.face_packs",
        ),
        ("restyle", {"image": image, "args": {"pack": "keep", "face_packs": {"1": {"a": 1}}}}, 422, "args.face_packs"),
        ("restyle", {"image": image, "args": {"pack": "keep", "face_packs": {"1": "../../x"}}}, 404, "no style pack"),
        ("restyle", {"image": image, "extra": 1}, 422, "extra"),
        ("restyle", {"image": image, "args": {"pack": "../../etc/passwd"}}, 404, "no style pack named 'etc_passwd'"),
        ("restyle", {"image": image, "args": {"pack": "con"}}, 422, "cannot be used as a style pack name"),
        ("train", {"references": "one"}, 422, "references: must be a list"),
        ("train", {"references": [None]}, 422, "references.0"),
        ("train", {"references": []}, 422, f"1 to {MAX_REFERENCES}"),
        ("train", {"references": [image] * (MAX_REFERENCES + 1), "args": ALIGNED}, 422, f"not {MAX_REFERENCES + 1}"),
        ("train", {"references": [image], "args": {**ALIGNED, "iterations": 10**9}}, 422, "args.iterations"),
        ("train", {"references": [image], "args": {**ALIGNED, "learning_rate": 0}}, 422, "args.learning_rate"),
        ("train", {"references": [image], "args": {**ALIGNED, "seed": -1}}, 422, "args.seed"),
        ("train", {"references": [image], "args": {**ALIGNED, "loss": "mse"}}, 422, "args.loss"),
        ("train", {"references": [image], "args": {**ALIGNED, "name": "x" * 101}}, 422, "args.name"),
        ("train", {"references": [image], "args": {**ALIGNED, "name": "keep"}}, 422, "already exists"),
        ("train", {"references": [image], "args": ALIGNED, "overwrite": "perhaps"}, 422, "overwrite"),
    ]
    for route, body, status, fragment in cases:
        with unchanged(runtime):
            if isinstance(body, bytes):
                answer = raw_json(client, route, body)
            else:
                answer = client.post(api_url(route), json=body)
            assert_api_refused(answer, status, fragment)
        assert client.get(api_url("version")).status_code == 200


def test_query_and_path_parameters(runtime, client):
    cases = [
        ("post", "packs", {}, 422, "query.name: is required"),
        ("post", "packs", {"name": "new", "overwrite": "perhaps"}, 422, "query.overwrite"),
        ("get", "packs", {"thumbnails": "lots"}, 422, "query.thumbnails"),
        ("get", "packs/keep", {"thumbnail": "[]"}, 422, "query.thumbnail"),
        ("get", "packs/%2e%2e", {}, 422, "cannot be used as a style pack name"),
        ("get", "packs/con", {}, 422, "cannot be used as a style pack name"),
        ("get", "packs/" + "a" * 5000, {}, 422, "limited to 100 characters"),
        ("get", "packs/missing/file", {}, 404, "no style pack named 'missing'"),
        ("delete", "packs/%00", {}, 422, "cannot be used as a style pack name"),
        ("delete", "packs/missing", {}, 404, "no style pack named 'missing'"),
        ("get", "train/nope", {}, 404, "no training job 'nope'"),
        ("post", "train/nope/cancel", {}, 404, "no training job 'nope'"),
    ]
    for method, route, params, status, fragment in cases:
        with unchanged(runtime):
            answer = getattr(client, method)(api_url(route), params=params)
            assert_api_refused(answer, status, fragment)
        assert client.get(api_url("version")).status_code == 200


def test_size_limits(runtime):
    small = FastAPI()
    small.include_router(
        create_router(runtime, TrainingJobs(runtime), max_json_bytes=2000, max_upload_bytes=3000), prefix=API_PREFIX
    )
    client = TestClient(small)
    with unchanged(runtime):
        answer = client.post(api_url("restyle"), json={"image": "A" * 5000})
        assert_api_refused(answer, 413, "larger than")
        answer = client.post(api_url("packs"), params={"name": "big"}, content=b"\0" * 5000)
        assert_api_refused(answer, 413, "larger than")
        declared = client.post(
            api_url("restyle"), content=b"{}", headers={"content-type": "application/json", "content-length": "99999"}
        )
        assert declared.status_code in (400, 413)  # refused on the declared length (or by the HTTP layer)
    assert client.get(api_url("version")).status_code == 200


def test_a_second_training_is_409_and_the_server_keeps_serving(runtime, client, jobs):
    body = {"references": [png_b64()], "args": {**ALIGNED, "name": "long", "iterations": 2000}}
    first = client.post(api_url("train"), json=body)
    assert first.status_code == 202, first.text
    for _ in range(3):
        second = client.post(api_url("train"), json={**body, "args": {**body["args"], "name": "other"}})
        assert_api_refused(second, 409, "already training")
        assert client.get(api_url("version")).status_code == 200
    job_id = first.json()["id"]
    assert client.post(api_url(f"train/{job_id}/cancel")).status_code == 200
    deadline = time.monotonic() + 60
    while client.get(api_url(f"train/{job_id}")).json()["state"] in ("queued", "running", "saving"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.get(api_url(f"train/{job_id}")).json()["state"] == "cancelled"
    assert [pack["name"] for pack in client.get(api_url("packs")).json()["packs"]] == ["keep"]
