#!/usr/bin/env bash
# One prepared GPU check for the export layer (issue 7): probe the machine, then build, verify and time everything
# that this GPU machine can run; results go to $OUT (gpu_check.json, gpu_check.md, gpu_check.log).
#
# Runs on a fresh GPU machine with no venv and no network: the image's python3 (torch with CUDA, onnx, onnxruntime,
# onnxscript) plus wheels carried in .whl/ (pywavelets, diffusers, importlib_metadata; fetch them with the command in
# scripts/gpu_check.py's docstring). Carry: [".whl"]. Budget: under 10 minutes; each stage has its own time limit and
# a failed stage is recorded, not fatal.
#
#   bash scripts/gpu_check.sh            # writes to $OUT, or ./gpu-check-out when OUT is unset
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
{
  echo "== probe"; date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv || true
  "$PY" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" || true
  if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" && echo "installed carried wheels: $(ls .whl)"
  else
    echo "no .whl/ carried: diffusion stages need diffusers, bundle stages pywavelets"
  fi
} 2>&1 | tee "$OUT/gpu_check.log"
export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
PYTHONUNBUFFERED=1 timeout 560 "$PY" scripts/gpu_check.py --out "$OUT" 2>&1 | tee -a "$OUT/gpu_check.log"
status=${PIPESTATUS[0]}
echo "gpu_check.py exit status $status" | tee -a "$OUT/gpu_check.log"
exit "$status"
