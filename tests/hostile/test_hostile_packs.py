"""Hostile style packs and JoJoGAN styles through the one import gate, from every front.

Each refusal is a ValueError subclass naming the file and the problem; code in a pickle never runs (the
marker file it would create never appears); the packs folder stays byte-identical.
"""

import pytest

from jojogan_ext.errors import CheckpointError, PackError
from jojogan_ext.packs import PACK_SUFFIX, load_pack, sniff_weights_file

from .conftest import (
    api_url,
    assert_api_refused,
    assert_cli_refused,
    assert_ui_refused,
    run_cli,
    run_cli_process,
    unchanged,
)
from .hostile_inputs import pack_cases, valid_compact_pack, valid_pack, valid_style


@pytest.fixture()
def marker(tmp_path):
    return tmp_path / "code_ran"


@pytest.fixture()
def cases(runtime, tmp_path, marker):
    made = pack_cases(tmp_path / "packs", runtime.base.generator, marker)
    yield made
    assert not marker.exists(), "a pickle ran code"


def api_expectation(case) -> str | None:
    """What the API must say when the client sends no file name: the file is judged by its content alone."""
    kind = sniff_weights_file(case.path) if case.path.stat().st_size else "empty"
    if kind is None:
        return "upload is neither a style pack"
    natural = {"safetensors": PACK_SUFFIX, "empty": case.path.suffix}.get(kind, ".pt")
    return case.reason if natural == case.path.suffix else None  # valid content under a wrong name


def refusal(runtime, case) -> str:
    with pytest.raises((PackError, CheckpointError)) as error:
        runtime.import_pack(case.path, "new")
    return str(error.value)


def test_python_api_raises_the_right_error(runtime, cases):
    for case in cases:
        with unchanged(runtime), pytest.raises((PackError, CheckpointError)) as error:
            runtime.import_pack(case.path, "new")
        assert isinstance(error.value, ValueError)
        assert case.path.name in str(error.value) and case.reason in str(error.value), (case.label, error.value)


def test_packs_dropped_into_the_folder_are_never_used(runtime, cases):
    """Files placed in the folder by hand never break the listing and are never used for restyling."""
    for case in (case for case in cases if case.path.suffix == PACK_SUFFIX):
        placed = runtime.packs.folder / case.path.name
        placed.write_bytes(case.path.read_bytes())
        try:
            listed = {info.name for info in runtime.packs.list()}  # header-only: a bad header is a problem line
            problems = runtime.packs.problems()
            assert "keep" in listed and (placed.stem in listed) != any(case.path.name in p for p in problems)
            with pytest.raises(PackError, match=case.path.name):
                runtime.pack_generator(placed.stem)  # load + fit check, as restyling does
        finally:
            placed.unlink()


def test_api_answers_422_and_keeps_serving(runtime, client, cases):
    for case in cases:
        expected = api_expectation(case)
        if expected is None:
            continue
        with unchanged(runtime):
            answer = client.post(api_url("packs"), params={"name": "new"}, content=case.path.read_bytes())
            assert_api_refused(answer, 422, expected)
            assert "body" not in answer.json()["detail"]  # never the name of our temp file
        assert client.get(api_url("packs")).json()["packs"][0]["name"] == "keep"


def test_one_gate_one_sentence_on_every_front(runtime, client, cases):
    """Given the file's name, the API says word for word what Python says (the UI and CLI: below)."""
    for case in cases:
        with unchanged(runtime):
            params = {"name": "new", "filename": case.path.name}
            answer = client.post(api_url("packs"), params=params, content=case.path.read_bytes())
            assert answer.status_code == 422 and answer.json()["detail"] == refusal(runtime, case), case.label


def test_ui_import_shows_a_sentence(runtime, handlers, cases):
    for case in cases:
        with unchanged(runtime):
            status, *_ = handlers.import_file(str(case.path), "new", False)
            assert_ui_refused(status, case.path.name, case.reason)
            assert status == "⚠️ " + refusal(runtime, case)


def test_cli_import_prints_one_line(runtime, capsys, cases):
    for case in cases:
        with unchanged(runtime):
            code, _, err = run_cli(runtime, capsys, "import", str(case.path), "--name", "new")
            assert_cli_refused(code, err, case.path.name, case.reason)
            assert err == f"error: {refusal(runtime, case)}\n"


def test_cli_process_never_runs_pickled_code(runtime, cases, marker):
    evil = next(case for case in cases if case.label == "code_global.pt")
    with unchanged(runtime):
        result = run_cli_process(runtime, "import", str(evil.path), "--name", "new")
    assert_cli_refused(result.returncode, result.stderr, "code_global.pt", "could run code")
    assert not marker.exists()


def test_valid_files_still_pass_the_gate(runtime, tmp_path):
    """The gate refuses by content, not by suspicion: a real pack and a real JoJoGAN style are imported."""
    base = runtime.base.generator
    pack = runtime.import_pack(valid_pack(tmp_path, base), "shared")
    style = runtime.import_pack(valid_style(tmp_path, base), "converted")
    misnamed = tmp_path / "pack_named.pt"  # judged by content: a valid pack under another name is a pack
    misnamed.write_bytes(pack.read_bytes())
    assert runtime.import_pack(misnamed, "misnamed").read_bytes() == pack.read_bytes()
    compact = runtime.import_pack(valid_compact_pack(tmp_path, base), "compact")
    assert compact.read_bytes() == (tmp_path / "valid_compact.safetensors").read_bytes()
    assert runtime.pack_generator("compact").size == base.size  # decoded on the base it was made for
    assert [info.name for info in runtime.packs.list()] == ["compact", "converted", "keep", "misnamed", "shared"]
    assert load_pack(style).metadata["jojogan.source"] == "converted from valid_style.pt"
    assert pack.read_bytes() == (tmp_path / "valid.safetensors").read_bytes()
    assert all(path.with_name(path.stem + ".preview.png").is_file() for path in (pack, style))
