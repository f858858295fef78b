#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): bf16 training and decoding of a
# ~1B-parameter model, FSDP and DeepSpeed ZeRO-2 with a resume; prints tokens/s, samples/s and
# peak memory as JSON. Meant for one call on a lent GPU machine (no internet,
# no mmengine or pycocotools there), within 8 minutes:
#
#   bash benchmarks/gpu_check.sh --prepare   # here: wheels for Python 3.12 into .gpu_wheels/
#   bash benchmarks/gpu_check.sh             # there, with .gpu_wheels carried along
#   bash benchmarks/gpu_check.sh --dry-run   # anywhere: every part at tiny size on the CPU
#
# --prepare fetches mmengine and its small dependencies, pycocotools, and
# DeepSpeed (a source package; built there without its CUDA ops) with its
# small dependencies (a few MB); EXTRA="scipy opencv-python-headless" adds the large ones
# (35 + 56 MB) where the GPU machine lacks them (check with
# `python -c "import scipy, cv2"` there first: the carry limit is 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.gpu_wheels
PKGS="mmengine==0.10.7 pycocotools addict yapf termcolor ${EXTRA:-}"
DEEPSPEED_PKGS="hjson msgpack ninja py-cpuinfo nvidia-ml-py einops"
if [ "${1:-}" = "--prepare" ]; then
  # shellcheck disable=SC2086
  python3 -m pip download -q --python-version 3.12 --only-binary=:all: --no-deps \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 -d "$WHEELS" $PKGS $DEEPSPEED_PKGS
  # pydantic with the pydantic-core it pins
  python3 -m pip download -q --python-version 3.12 --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$WHEELS" pydantic
  python3 -m pip download -q --no-deps --no-binary=:all: -d "$WHEELS" "deepspeed>=0.16"
  du -sh "$WHEELS"
  exit 0
fi
if [ -d "$WHEELS" ] && ! python3 -c "import mmengine, pycocotools" 2>/dev/null; then
  python3 -m pip install -q --no-index --find-links "$WHEELS" --no-deps "$WHEELS"/*.whl
fi
if [ -d "$WHEELS" ] && ls "$WHEELS"/deepspeed-*.tar.gz >/dev/null 2>&1 \
  && ! python3 -c "import deepspeed" 2>/dev/null; then
  # optional: the check runs without it (and says so by its missing part)
  DS_BUILD_OPS=0 python3 -m pip install -q --no-index --find-links "$WHEELS" --no-deps \
    --no-build-isolation "$WHEELS"/deepspeed-*.tar.gz || echo "gpu_check: DeepSpeed not installed" >&2
fi
missing=$(python3 -c "
import importlib.util as u
need = ['mmengine', 'pycocotools', 'scipy', 'cv2', 'timm', 'transformers', 'safetensors']
print(' '.join(m for m in need if u.find_spec(m) is None))")
if [ -n "$missing" ]; then
  echo "gpu_check: missing modules: $missing (see --prepare and EXTRA above)" >&2
  exit 2
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
timeout 480 python3 benchmarks/gpu_check.py --out "${OUT:-/tmp}/gpu_check.json" "$@"
