#!/usr/bin/env bash
# The GPU stack, for one CUDA major, into the .venv that scripts/install.sh made:
#
#   bash scripts/install_gpu.sh cu12   # onnxruntime-gpu 1.26.0 (CUDA 12) + tensorrt-cu12 10.16.1.11
#   bash scripts/install_gpu.sh cu13   # onnxruntime-gpu 1.31.1 (CUDA 13) + tensorrt-cu13 10.16.1.11
#
# onnxruntime-gpu replaces the CPU onnxruntime (both install the `onnxruntime` module: never keep both); its TensorRT
# provider loads TensorRT 10 (libnvinfer.so.10), so TensorRT is pinned below 11. The onnxruntime-gpu wheels on PyPI are
# CUDA 12 builds up to 1.26 and CUDA 13 builds from 1.27 (their [cuda] extras' nvidia-*-cu12/13 requirements). torch
# stays as installed: use a torch build of the same CUDA major (`python -c "import torch; print(torch.version.cuda)"`).
# The last step prints the versions and fails on a mismatch it can see. Not run on a GPU by this project (no GPU
# machine was available to it): the pins come from the wheels' metadata. The tensorrt-cu1x wheels download their
# libraries from NVIDIA's package index at install time.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  cu12) ORT_GPU="onnxruntime-gpu[cuda,cudnn]==1.26.0"; EXTRA="gpu-cu12" ;;
  cu13) ORT_GPU="onnxruntime-gpu[cuda,cudnn]==1.31.1"; EXTRA="gpu-cu13" ;;
  *) echo "usage: bash scripts/install_gpu.sh cu12|cu13 (the CUDA major your driver supports: nvidia-smi shows it)" >&2
     exit 2 ;;
esac
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "no .venv: run scripts/install.sh first" >&2
  exit 1
fi
"$PY" -m pip install -q --disable-pip-version-check -e ".[${EXTRA}]"
# Remove both, then install the GPU build alone: uninstalling one of the two afterwards would delete shared files.
"$PY" -m pip uninstall -q -y onnxruntime onnxruntime-gpu
"$PY" -m pip install -q --disable-pip-version-check "$ORT_GPU"
"$PY" - <<'PYCODE'
from cardiacnets.execution import compatibility_problems, runtime_versions, versions_line

versions = runtime_versions()
print(versions_line(versions))
problems = compatibility_problems(versions)
for problem in problems:
    print("problem:", problem)
raise SystemExit(1 if problems else 0)
PYCODE
echo "GPU stack installed; check it with: bash scripts/gpu_check.sh" >&2
