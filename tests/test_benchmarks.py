"""The benchmark scripts still run the real code paths and print their one JSON line (tiny sizes)."""

import json
import os
import subprocess
import sys

from conftest import REPO


def run_benchmark(module: str, *args: str) -> dict:
    """Run `python -m benchmarks.<module> ARGS` and return its one JSON line."""
    command = [sys.executable, "-m", f"benchmarks.{module}", *args]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    return json.loads(line)


def test_bench_train_prints_one_json_line(fixtures):
    report = run_benchmark("bench_train", "--size", "64", "--iterations", "2", "--device", "cpu")
    assert report["benchmark"] == "train_iteration" and report["size"] == 64
    assert len(report["all_steps_s"]) == 2 and report["seconds_per_iteration"] > 0
    assert report["previews"] == 2 and report["preview_steps"] == [1, 2]  # the loop as the UI runs it
    assert report["preview_s"] > 0 and 0 < report["preview_share_whole_loop"] < 1
    assert report["load_average"] and len(report["load_average"]) == 3
    assert report["minimum_gflop_per_iteration"] > 0 and report["peak_rss_mb"] > 0
    assert report["autocast"] is None and report["cudnn_benchmark"] is False


def test_bench_compose_prints_one_json_line():
    report = run_benchmark("bench_compose", "--size", "32", "--repeats", "1")
    assert report["benchmark"] == "compose_pack" and report["size"] == 32
    assert report["seconds_swap"] > 0 and report["seconds_mix"] > 0 and report["peak_added_mb"] >= 0
    assert set(report["swap_stages_s"]) == {"read_and_check", "hash", "blend", "preview"}


def test_bench_try_on_prints_one_json_line():
    report = run_benchmark("bench_try_on", "--size", "32")
    assert report["benchmark"] == "try_on" and report["size"] == 32
    assert report["renders"] == 3 and report["preview_first_recipe"] > 0 and report["try_on_second_visit"] >= 0
