"""`python -m jojogan_ext` as a user runs it: real subprocesses over tiny model files."""

import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from conftest import REPO


@pytest.fixture()
def models(tiny_models_dir, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "base").symlink_to(tiny_models_dir / "base", target_is_directory=True)
    return folder


def cli(models, *args: str, cwd=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "jojogan_ext", "--models-dir", str(models), "--device", "cpu",
               "--detector", "retinaface_mobile0.25", "--skip-detector-check", *args]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd or REPO, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], result.stderr


def test_train_list_show_restyle_rename_delete(models, fixtures, tmp_path):
    reference = fixtures / "align" / "A_full_256.png"
    trained = cli(models, "train", str(reference), "--name", "cli style", "--iterations", "2", "--references-are-aligned",
                  "--seed", "3", "--dtype", "float32")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "saved style pack 'cli style'" in trained.stdout and ". Compact: " in trained.stdout  # the default
    assert (models / "styles" / "cli style.safetensors").is_file()

    listed = cli(models, "packs", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("cli style\tcli style\t")
    shown = cli(models, "packs", "show", "cli style")
    assert '"jojogan.format_version": "2"' in shown.stdout and "thumbnail" not in shown.stdout
    expanded = cli(models, "packs", "expand", "cli style")
    assert expanded.returncode == 0 and "saved style pack 'cli style-full'" in expanded.stdout, expanded.stderr
    assert '"jojogan.format_version": "1"' in cli(models, "packs", "show", "cli style-full").stdout
    compacted = cli(
        models, "packs", "compact", "cli style-full", "--out", "again", "--min-psnr", "45", "--latents", "2"
    )
    assert compacted.returncode == 0 and "saved style pack 'again'" in compacted.stdout, compacted.stderr
    assert "Compact: " in compacted.stdout and "budget ≥ 45 dB" in compacted.stdout
    refused = cli(models, "packs", "compact", "cli style", "--min-psnr", "500")
    assert_one_line_error(refused, "min_psnr")
    for name in ("cli style-full", "again"):
        assert cli(models, "packs", "delete", name).returncode == 0

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    Image.new("RGB", (96, 80), "gray").save(inputs / "plain.png")
    restyled = cli(models, "restyle", str(inputs), "--pack", "cli style", "-o", str(tmp_path / "out"))
    assert restyled.returncode == 0, restyled.stderr
    assert "No face was found" in restyled.stderr
    with Image.open(tmp_path / "out" / "plain_jojogan.png") as out:
        assert out.size == (96, 80)

    assert cli(models, "packs", "rename", "cli style", "renamed").returncode == 0
    assert cli(models, "packs", "delete", "renamed").returncode == 0
    assert not list((models / "styles").glob("*.safetensors"))


def test_import_a_jojogan_style(models, fixtures):
    # the tiny64 fixture style was trained on another base: the import must refuse it by shape
    result = cli(models, "import", str(fixtures / "stylegan2" / "tiny64_jojo_style_after1step.pt"))
    assert_one_line_error(result, "does not fit the base model")
    assert not (models / "styles").exists() or not list((models / "styles").iterdir())


def test_errors_are_one_line(models, tmp_path):
    assert_one_line_error(cli(models, "restyle", str(tmp_path / "absent.png"), "--pack", "x"), "no style pack named")
    assert_one_line_error(cli(models, "packs", "show", "../../etc/passwd"), "no style pack named")
    bad = cli(models, "train", "x.png", "--name", "n", "--iterations", "0")
    assert_one_line_error(bad, "iterations")
    empty = tmp_path / "empty"
    empty.mkdir()
    torch.save({"g": {}}, tmp_path / "style.pt")
    offline = cli(empty, "import", str(tmp_path / "style.pt"))  # needs the base model, downloads are off
    assert offline.returncode == 1 and "Traceback" not in offline.stderr
    assert "stylegan2-ffhq-config-f.pt" in offline.stderr and "381.5 MB" in offline.stderr
    half = cli(models, "--precision", "bfloat16", "train", str(tmp_path / "x.png"), "--name", "n")
    assert_one_line_error(half, "--precision bfloat16 needs a GPU")
    usage = cli(models, "nonsense")
    assert usage.returncode == 2


def test_download_list_names_the_catalog(models):
    result = cli(models, "download", "--list")
    assert result.returncode == 0
    assert "e4e_ffhq_encode.pt\t1.2 GB" in result.stdout


def test_detector_auto_is_the_default_and_resolves_per_device(tmp_path):
    from jojogan_ext.cli import build_parser, make_runtime

    options = build_parser().parse_args(["--models-dir", str(tmp_path), "--device", "cpu", "packs", "list"])
    assert options.detector == "auto"
    assert make_runtime(options).detector_network == "auto"
    auto = build_parser().parse_args(["--detector", "auto", "--models-dir", str(tmp_path), "packs", "list"])
    assert auto.detector == "auto"


def test_packs_blend_and_mix_save_composed_packs(models):
    from jojogan_ext.packs import load_pack
    from jojogan_ext.runtime import Runtime

    from tiny_models import save_styled_pack

    save_styled_pack(Runtime(models), "ink")
    blended = cli(models, "packs", "blend", "soft ink", "--low", "ink", "--high", "base", "--at", "16",
                  "--transition", "0.5", "--dtype", "float32")  # fmt: skip
    assert blended.returncode == 0, blended.stderr
    assert "saved style pack 'soft ink'" in blended.stdout
    soft = load_pack(models / "styles" / "soft ink.safetensors")
    recipe = soft.json_field("jojogan.recipe")
    assert soft.metadata["jojogan.source"] == "composed" and soft.tensors["input.input"].dtype == torch.float32
    assert recipe["recipe"] == {"mode": "swap", "low": "ink", "high": "base", "at": 16, "transition": 0.5}
    assert (models / "styles" / "soft ink.preview.png").is_file()

    mixed = cli(models, "packs", "mix", "mixed", "ink=0.7", "soft ink=0.2", "base=0.1")
    assert mixed.returncode == 0, mixed.stderr
    pack = load_pack(models / "styles" / "mixed.safetensors")
    assert pack.tensors["input.input"].dtype == torch.float16  # the training default
    weights = {source["name"]: source["weights"][0] for source in pack.json_field("jojogan.recipe")["sources"]}
    assert weights == pytest.approx({"ink": 0.7, "soft ink": 0.2, "base": 0.1})

    assert_one_line_error(cli(models, "packs", "mix", "mixed", "ink=1"), "already exists")
    assert cli(models, "packs", "mix", "mixed", "ink=1", "--overwrite").returncode == 0


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["blend", "x", "--low", "ghost", "--high", "base", "--at", "16"], "no style pack named 'ghost'"),
        (["blend", "x", "--low", "base", "--high", "base", "--at", "24"], "at"),
        (["blend", "x", "--low", "base", "--high", "base", "--at", "128"], "above the generator's 64 px"),
        (["mix", "x", "base=1", "ink=much"], "The weight of 'ink' must be a number"),
    ],
)
def test_packs_blend_and_mix_errors_are_one_line(models, args, text):
    assert_one_line_error(cli(models, "packs", *args), text)
    assert not (models / "styles" / "x.safetensors").exists()
