"""Hostile pack names from every front: made safe or refused, never a path outside the packs folder,
never over another pack. Random names (hypothesis) never escape either.
"""

import json
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jojogan_ext.args import TrainArgs
from jojogan_ext.errors import PackError
from jojogan_ext.files import temp_sibling
from jojogan_ext.packs import PACK_SUFFIX, PackLibrary, preview_path, safe_pack_name

from .conftest import api_url, assert_api_refused, assert_cli_refused, assert_ui_refused, run_cli, unchanged
from .hostile_inputs import REFUSED_NAMES, SANITIZED_NAMES, noise_image, valid_pack
from .test_hostile_api import png_b64


@pytest.fixture()
def shared(runtime, tmp_path):
    """A valid pack file someone shares, to import under hostile names."""
    return valid_pack(tmp_path, runtime.base.generator)


def assert_only_new_pack(runtime, expected: str) -> None:
    """The folder holds 'keep' and the new pack `expected` (with its preview), nothing else."""
    names = sorted(path.name for path in runtime.packs.folder.iterdir())
    wanted = {"keep", expected}
    assert names == sorted([f"{n}{PACK_SUFFIX}" for n in wanted] + [f"{n}.preview.png" for n in wanted]), names


def test_python_api(runtime):
    folder = runtime.packs.folder.resolve()
    for name, reason in REFUSED_NAMES:
        with unchanged(runtime), pytest.raises(PackError, match=reason) as error:
            runtime.packs.new_path(name)
        assert isinstance(error.value, ValueError) and "\n" not in str(error.value)
    for name, expected in SANITIZED_NAMES:
        path = runtime.packs.new_path(name)
        assert path.parent == folder and path.name == expected + PACK_SUFFIX, name


def test_api_upload(runtime, client, shared):
    data = shared.read_bytes()
    for name, reason in REFUSED_NAMES:
        with unchanged(runtime):
            assert_api_refused(client.post(api_url("packs"), params={"name": name}, content=data), 422, reason)
    for name, expected in SANITIZED_NAMES:
        with unchanged(runtime):
            created = client.post(api_url("packs"), params={"name": name}, content=data)
            assert created.status_code == 201 and created.json()["name"] == expected, created.text
            assert_only_new_pack(runtime, expected)
            assert client.delete(api_url(f"packs/{expected}")).json() == {"deleted": expected}
    assert client.get(api_url("version")).status_code == 200


def test_ui_import_and_rename(runtime, handlers, shared):
    for name, reason in REFUSED_NAMES:
        with unchanged(runtime):
            if name.strip():  # an empty name box means "use the file name"
                assert_ui_refused(handlers.import_file(str(shared), name, False)[0], reason)
            assert_ui_refused(handlers.rename("keep", name)[0], reason)
    for name, expected in SANITIZED_NAMES:
        with unchanged(runtime):
            status, *_ = handlers.import_file(str(shared), name, False)
            assert status.startswith(f"Imported valid.safetensors as style pack '{expected}'. ")
            assert_only_new_pack(runtime, expected)
            assert handlers.delete(expected)[0] == f"Deleted style pack '{expected}'."
        with unchanged(runtime):
            assert handlers.rename("keep", name)[0] == f"Renamed 'keep' to '{expected}'."
            assert handlers.rename(expected, "keep")[0] == f"Renamed '{expected}' to 'keep'."


def test_cli_import_and_rename(runtime, capsys, shared):
    for name, reason in REFUSED_NAMES:
        with unchanged(runtime):
            if name:  # an empty --name means "use the file name"
                code, _, err = run_cli(runtime, capsys, "import", str(shared), "--name", name)
                assert_cli_refused(code, err, reason)
            code, _, err = run_cli(runtime, capsys, "packs", "rename", "keep", name)
            assert_cli_refused(code, err, reason)
    for name, expected in SANITIZED_NAMES[:3]:
        with unchanged(runtime):
            code, out, _ = run_cli(runtime, capsys, "import", str(shared), "--name", name)
            assert code == 0 and f"as style pack '{expected}'" in out
            assert run_cli(runtime, capsys, "packs", "delete", expected)[0] == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=120))
def test_random_names_never_leave_the_folder(tmp_path, name):
    library = PackLibrary(tmp_path / "styles")
    folder = library.folder.resolve()
    try:
        path = library.path_for(name)
    except PackError as error:
        assert "\n" not in str(error)
        return
    assert path.parent == folder and path.name == safe_pack_name(name) + PACK_SUFFIX
    assert safe_pack_name(path.stem) == path.stem  # sanitizing is idempotent
    folder.mkdir(exist_ok=True)
    for target in (path, preview_path(path), temp_sibling(preview_path(path))):  # the OS takes every name we make
        target.write_bytes(b"")
        assert target.parent == folder
        target.unlink()


# every code point: lone surrogates, non-characters and private use included, with the odd ones made likely
ANY_CHARACTER = st.one_of(
    st.integers(0, 0x10FFFF).map(chr),
    st.sampled_from(["\ud800", "\udfff", "\udc80", "\ufffe", "\uffff", "\ufdd0", "\U0010ffff", "\x00", "/", "."]),
)


def assert_json_answer(answer, statuses: tuple[int, ...]) -> dict:
    """An answer whose status is expected and whose body is UTF-8 JSON (never a 500)."""
    assert answer.status_code in statuses, answer.text
    return json.loads(answer.content.decode("utf-8"))


def post_json(client, route: str, body: dict):
    """A JSON body as a client may send it: lone surrogates are valid JSON escapes (`"\\ud800"`)."""
    content = json.dumps(body, ensure_ascii=True).encode()
    return client.post(api_url(route), content=content, headers={"content-type": "application/json"})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(ANY_CHARACTER, max_size=40))
def test_any_unicode_name_is_cleaned_or_refused_in_one_encodable_sentence(tmp_path, name):
    library = PackLibrary(tmp_path / "styles")
    try:
        path = library.path_for(name)
    except PackError as error:
        str(error).encode("utf-8")  # every sentence can be shown, printed and sent
        return
    path.stem.encode("utf-8")
    assert safe_pack_name(path.stem) == path.stem


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(ANY_CHARACTER, max_size=20), key=st.text(ANY_CHARACTER, min_size=1, max_size=5))
def test_any_unicode_in_api_bodies_gets_an_encodable_answer(client, busy, name, key):
    """Names and unknown keys with any code point: a 4xx JSON sentence, never a 500, nothing started."""
    image = png_b64()
    aligned = {"references_are_aligned": True}
    assert_json_answer(post_json(client, "train", {"references": [image], "args": {**aligned, "name": name}}),
                       (409, 422))  # fmt: skip
    assert_json_answer(post_json(client, "train", {"references": [image], "args": {**aligned, key: 1}}), (409, 422))
    assert_json_answer(post_json(client, "restyle", {"image": image, "args": {"pack": name + "~"}}), (404, 422))
    assert busy.jobs.current() is busy.job  # no other training was started


@pytest.fixture()
def busy(runtime, jobs):
    """A long training holding the trainer, so that property tests of POST train never start another."""
    job = jobs.start([noise_image(64, 64)], TrainArgs(name="busy", iterations=2000, references_are_aligned=True))
    return SimpleNamespace(jobs=jobs, job=job)


def test_a_lone_surrogate_is_refused_before_anything_starts(client, jobs):
    body = {"references": [png_b64()], "args": {"name": "mine\ud800", "references_are_aligned": True}}
    refused = assert_json_answer(post_json(client, "train", body), (422,))
    assert refused["detail"].startswith("The request body holds a lone UTF-16 surrogate in args.name")
    assert jobs.current() is None


def test_a_training_name_is_cleaned_before_the_job_starts(runtime, client, jobs):
    body = {
        "references": [png_b64()],
        "args": {"name": "../mine\ufffe", "iterations": 1, "references_are_aligned": True},
    }
    started = assert_json_answer(post_json(client, "train", body), (202,))
    assert started["args"]["name"] == "mine"
    done = jobs.wait(started["id"], timeout=60)
    assert assert_json_answer(client.get(api_url(f"train/{done.id}")), (200,))["pack"] == "mine"
    assert runtime.packs.load("mine").title == "mine"
