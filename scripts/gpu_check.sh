#!/usr/bin/env bash
# One prepared GPU check (issue 19): probe the machine, then build, verify and time what this GPU machine can run;
# results go to $OUT (gpu_check.json and gpu_check.md, rewritten after every stage, and gpu_check.log). Stages that
# could not run say so ("skipped (not installed)", "failed"), never "ok"; the exit status is non-zero unless every
# stage is ok (pass --allow-missing to accept stages skipped for a missing package). Without a GPU: one line, exit 1.
#
# Runs on a fresh GPU machine with no venv and no network: the image's python3 (torch with CUDA, onnx, onnxruntime,
# onnxscript) plus wheels carried in .whl/ (see scripts/gpu_check.py's docstring). The wheels are installed without
# their dependencies (pip cannot reach an index there), so the probe stage imports every module the later stages need
# and names each one still missing (diffusers needs huggingface-hub, safetensors, regex, Pillow, ...). Carry: [".whl"].
# Budget: about 8 minutes (the script stops starting stages at 450 s; the hard limit here is 480 s).
#
#   bash scripts/gpu_check.sh [--allow-missing]   # writes to $OUT, or ./gpu-check-out when OUT is unset
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
    echo "no .whl/ carried: the probe lists what the stages miss (diffusers and its dependencies, pywavelets)"
  fi
} 2>&1 | tee "$OUT/gpu_check.log"
export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
PYTHONUNBUFFERED=1 timeout 480 "$PY" scripts/gpu_check.py --out "$OUT" "$@" 2>&1 | tee -a "$OUT/gpu_check.log"
status=${PIPESTATUS[0]}
echo "gpu_check.py exit status $status" | tee -a "$OUT/gpu_check.log"
exit "$status"
