#!/usr/bin/env bash
# Real web UI hosts for the live tier (tests/webui/): set one up, start it, stop it. CPU only, offline.
# Everything is written under the host folder you name (outside this repository); nothing here downloads
# into the repository. tests/webui/README.md explains each step.
#
#   tests/webui/host.sh setup  a1111|forge <host dir>          clone host + repositories, venv, extension, models
#   tests/webui/host.sh start  a1111|forge <host dir> [port]   start in the background, wait for "Startup time"
#   tests/webui/host.sh stop   a1111|forge <host dir>          stop it (its whole process group)
#   tests/webui/host.sh status a1111|forge <host dir>          running or not, URL and log
#
# Environment (setup): JOJOGAN_GIT_SOURCE, a template for where repositories come from
# (default "https://github.com/{owner}/{name}.git"; e.g. "/work/.mirror/{owner}+{name}/repo" for local
# mirrors); JOJOGAN_HOST_PYTHON (default python3.11); JOJOGAN_EXTENSION (the extension folder to link into
# the host, default this checkout).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GITHUB='https://github.com/{owner}/{name}.git'
GIT_SOURCE=${JOJOGAN_GIT_SOURCE:-$GITHUB}
HOST_PYTHON=${JOJOGAN_HOST_PYTHON:-python3.11}
EXTENSION=${JOJOGAN_EXTENSION:-$REPO}
START_TIMEOUT=${JOJOGAN_START_TIMEOUT:-900}

usage() {
  sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# What each host is: its source, and the repositories its launch_utils.py clones into repositories/
# (same commits as that file), "<dir> <owner>/<name> <commit>".
host_source() {
  case $1 in
    a1111) echo "kklouzal/stable-diffusion-webui 82a973c04367123ae98bd9abdf80d9eda9b910e2" ;; # = v1.10.1
    forge) echo "lllyasviel/stable-diffusion-webui-forge dfdcbab685e57677014f05a3309b48cc87383167" ;;
  esac
}
host_repositories() {
  echo "stable-diffusion-webui-assets AUTOMATIC1111/stable-diffusion-webui-assets 6f7db241d2f8ba7457bac5ca9753331f0c266917"
  echo "BLIP salesforce/BLIP 48211a1594f1321b00f14c9f7a5b4813144b2fb9"
  case $1 in
    a1111)
      echo "stable-diffusion-stability-ai Stability-AI/stablediffusion cf1d67a6fd5ea1aa600c4df58e5b47da45f6bdbf"
      echo "generative-models Stability-AI/generative-models 45c443b316737a4ab6e40413d7794a7f5657c19f"
      echo "k-diffusion crowsonkb/k-diffusion ab527a9a6d347f364e3d185ba6d714e22d80cb3c"
      ;;
    forge) echo "huggingface_guess lllyasviel/huggingface_guess 84826248b49bb7ca754c73293299c4d4e23a548d" ;;
  esac
}

# The exact command-line flags each host is started with (CPU, fp32, API on, 127.0.0.1 only, no installs).
host_flags() {
  local flags="--skip-prepare-environment --skip-torch-cuda-test --skip-version-check --api"
  flags+=" --use-cpu all --no-half --precision full --no-download-sd-model"
  flags+=" --ckpt models/Stable-diffusion/tiny-sd15.ckpt"
  # Forge: its own device switch, and fp32 everywhere (it keeps the text encoder in fp16 on CPU otherwise).
  [[ $1 == forge ]] && flags+=" --always-cpu --all-in-fp32 --clip-in-fp32"
  echo "$flags"
}
default_port() { [[ $1 == forge ]] && echo 7861 || echo 7860; }

git_url() {
  local owner=${1%%/*} name=${1#*/} url=$GIT_SOURCE
  url=${url//'{owner}'/$owner}
  echo "${url//'{name}'/$name}"
}

clone() { # clone <owner/name> <commit> <dir>
  if [[ ! -d $3/.git ]]; then
    git clone -q --no-checkout "$(git_url "$1")" "$3"
  fi
  git -C "$3" -c advice.detachedHead=false checkout -q "$2" || echo "note: $3: some files were not checked out"
}

setup() {
  local kind=$1 dir=$2
  case $dir in "$REPO"/*) echo "error: put the host outside this repository ($REPO)" >&2 && exit 1 ;; esac
  read -r source commit <<<"$(host_source "$kind")"
  clone "$source" "$commit" "$dir"
  while read -r name repository repository_commit; do
    clone "$repository" "$repository_commit" "$dir/repositories/$name"
  done < <(host_repositories "$kind")
  if [[ ! -x $dir/venv/bin/python ]]; then
    "$HOST_PYTHON" -m venv "$dir/venv"
  fi
  # torch 2.1.2 as A1111 1.10.1 pins it (Forge runs on it too); the PyPI CUDA wheels also run on CPU.
  "$dir/venv/bin/pip" install -q torch==2.1.2 torchvision==0.16.2
  "$dir/venv/bin/pip" install -q -r "$dir/requirements_versions.txt"
  # openai/CLIP as launch_utils.py installs it (k-diffusion imports it); it needs the venv's setuptools.
  "$dir/venv/bin/pip" install -q wheel
  "$dir/venv/bin/pip" install -q --no-build-isolation "git+$(git_url openai/CLIP | sed 's|^/|file:///|')@d50d76daa670286dd6cacf3bcd80b5e4823fc8e1"
  # Forge's built-in soft-inpainting imports joblib, which its requirements do not name.
  [[ $kind != forge ]] || "$dir/venv/bin/pip" install -q joblib
  # What the extension's install.py would install (--skip-prepare-environment skips extension installers).
  "$dir/venv/bin/pip" install -q -r "$EXTENSION/requirements.txt"
  mkdir -p "$dir/extensions"
  ln -sfn "$EXTENSION" "$dir/extensions/sd-webui-jojogan"
  "$dir/venv/bin/python" "$HERE/tiny_sd.py" "$dir/models/Stable-diffusion"
  local models=$dir/models/JoJoGAN-tiny
  PYTHONPATH="$REPO:$REPO/tests" "$dir/venv/bin/python" - "$models" "$dir/config.json" <<'EOF'
import json, sys
from pathlib import Path
from tiny_models import write_tiny_models

models, config = Path(sys.argv[1]), Path(sys.argv[2])
write_tiny_models(models)
options = json.loads(config.read_text()) if config.exists() else {}
options |= {"jojogan_models_dir": str(models), "jojogan_detector": "retinaface_mobile0.25", "jojogan_check_detector": False}
options["sd_model_checkpoint"] = "tiny-sd15.ckpt"  # Forge's checkpoint menu stays empty with --ckpt alone
config.write_text(json.dumps(options, indent=4))
print(f"tiny JoJoGAN models in {models}; {config}: jojogan_* options and sd_model_checkpoint set")
EOF
  echo "set up $kind in $dir; start it with: $0 start $kind $dir"
}

pid_of() { # the running host's process-group leader, or nothing
  local pid
  pid=$(cat "$1/webui.pid" 2>/dev/null) || return 0
  kill -0 "$pid" 2>/dev/null && echo "$pid" || true
}

start() {
  local kind=$1 dir=$2 port=${3:-$(default_port "$1")} pid
  [[ -x $dir/venv/bin/python ]] || { echo "error: $dir is not set up (run: $0 setup $kind $dir)" >&2 && exit 1; }
  pid=$(pid_of "$dir")
  [[ -z $pid ]] || { echo "error: $kind already runs in $dir (pid $pid); stop it first" >&2 && exit 1; }
  echo "$port" >"$dir/webui.port"
  [[ ! -f $dir/webui.log ]] || mv "$dir/webui.log" "$dir/webui.log.1" # the last run's log, for comparison
  (
    cd "$dir"
    # Offline: no Hugging Face or Gradio network calls; the log is written unbuffered for the tests.
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False \
      DO_NOT_TRACK=1 PYTHONUNBUFFERED=1 \
      setsid nohup venv/bin/python launch.py $(host_flags "$kind") --port "$port" >webui.log 2>&1 </dev/null &
    echo $! >webui.pid
  )
  local started=$SECONDS
  pid=$(cat "$dir/webui.pid")
  until grep -q "Startup time" "$dir/webui.log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/webui.log" >&2
      echo "error: $kind exited during start-up (log: $dir/webui.log)" >&2
      exit 1
    fi
    if ((SECONDS - started > START_TIMEOUT)); then
      echo "error: no \"Startup time\" after ${START_TIMEOUT}s (log: $dir/webui.log)" >&2
      exit 1
    fi
    sleep 2
  done
  echo "$kind started in $((SECONDS - started))s: http://127.0.0.1:$port (pid $pid, log $dir/webui.log)"
}

stop() {
  local dir=$2 pid
  pid=$(pid_of "$dir")
  [[ -n $pid ]] || { echo "$1 is not running in $dir"; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$dir/webui.pid"
  echo "stopped $1 (pid $pid)"
}

status() {
  local pid
  pid=$(pid_of "$2")
  if [[ -n $pid ]]; then
    echo "$1 runs: http://127.0.0.1:$(cat "$2/webui.port") (pid $pid, log $2/webui.log)"
  else
    echo "$1 is not running in $2"
    return 1
  fi
}

[[ $# -ge 3 && ($2 == a1111 || $2 == forge) ]] || usage
command=$1 kind=$2 dir=$(realpath -m "$3")
shift 3
case $command in
  setup) setup "$kind" "$dir" ;;
  start) start "$kind" "$dir" "$@" ;;
  stop) stop "$kind" "$dir" ;;
  status) status "$kind" "$dir" ;;
  *) usage ;;
esac
