"""The benchmark scripts still run the real code paths and print their one JSON line (tiny sizes)."""

import json
import os
import subprocess
import sys

from conftest import REPO


def test_bench_train_prints_one_json_line(fixtures):
    command = [sys.executable, "-m", "benchmarks.bench_train", "--size", "64", "--iterations", "2", "--device", "cpu"]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    report = json.loads(line)
    assert report["benchmark"] == "train_iteration" and report["size"] == 64
    assert len(report["all_steps_s"]) == 2 and report["seconds_per_iteration"] > 0
    assert report["previews"] == 2 and report["preview_steps"] == [1, 2]  # the loop as the UI runs it
    assert report["preview_s"] > 0 and 0 < report["preview_share_whole_loop"] < 1
    assert report["load_average"] and len(report["load_average"]) == 3
    assert report["minimum_gflop_per_iteration"] > 0 and report["peak_rss_mb"] > 0
    assert report["autocast"] is None and report["cudnn_benchmark"] is False
