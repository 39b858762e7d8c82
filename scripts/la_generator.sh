#!/usr/bin/env bash
# Retrain the default bundle's 4-chamber (LA) cine generator and put it into the bundle only if it draws a heart
# (issue 23). The new denoiser is conditioned on the shipped aligned ECG encoder (cardiacnets/data/aligned-ecg-encoder,
# recovered from the bundle's cine/ecg_encoder.onnx), i.e. on exactly what the bundle's shared encoder graph computes,
# so the bundle's short-axis generator and encoder stay as they are.
#   cohort (if missing) -> LA frame autoencoder -> LA denoiser (resumable) -> pipeline -> faithfulness report (LA view,
#   merged into benchmarks/results/ecg2cmr-synthetic) -> bundle-update-cine + verify when >= MIN_HEART of the
#   ECG-conditioned frames show a heart.
# Usage: scripts/la_generator.sh [RUN_DIR] [BUNDLE_DIR]    (rerun to resume; sizes overridable through the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/demo}
BUNDLE=${2:-cardiacnets/data/default-bundle}
BIN=${BIN:-.venv/bin}
N=${DEMO_SUBJECTS:-1536}
VAE_STEPS=${DEMO_VAE_STEPS:-800}
LA_STEPS=${DEMO_DIFF_LA_STEPS:-6000}   # the short axis became faithful at 6,000; the 0.2.0 bundle's LA had 2,000
ENCODER=${DEMO_ECG_ENCODER:-cardiacnets/data/aligned-ecg-encoder}
MIN_HEART=${DEMO_MIN_FRAMES_WITH_HEART:-0.95}
VERSION=${DEMO_BUNDLE_VERSION:-0.2.1}
REPORT=${DEMO_REPORT_DIR:-benchmarks/results/ecg2cmr-synthetic}
# shellcheck source=scripts/lib/stages.sh
source scripts/lib/stages.sh
demo_cohort
demo_vae la 48
if [ -f "$RUN/ecg2cmr-la/checkpoints/last.pt" ]; then  # resume (returns at once when it already reached LA_STEPS)
  stage diffusion-la "$BIN/cntrain" diffusion --out "$RUN/ecg2cmr-la" --resume --max-steps "$LA_STEPS"
else
  stage diffusion-la "$BIN/cntrain" diffusion --view la --vae "$RUN/vae-la" --ecg-encoder "$ENCODER" --data "$RUN/cohort" \
    --n-subjects "$N" --model cpu --max-steps "$LA_STEPS" --batch-size 8 --out "$RUN/ecg2cmr-la" \
    --set data.cache=true --set task.num_frames=8 --set task.height=48 --set task.width=48 --set train.lr=0.0004 \
    --set train.precision=fp32 --set train.eval_every=500 --set train.ckpt_every=500
fi
rm -rf "$RUN/pipeline-la"
stage pipeline-la "$BIN/python" -c "
import sys
from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
EcgToCmrPipeline.from_components(sys.argv[1], sys.argv[2], sys.argv[3]).save_pretrained(sys.argv[4])
" "$ENCODER" "$RUN/ecg2cmr-la" "$RUN/vae-la" "$RUN/pipeline-la"
stage report-la "$BIN/cntrain" ecg2cmr-report --pipeline "$RUN/pipeline-la" --data "$RUN/cohort" --n-subjects "$N" \
  --max-items 128 --ddim-items 16 --out "$REPORT"
share=$("$BIN/python" -c "import json, sys; print(json.load(open(sys.argv[1]))['frames_with_heart']['la'])" \
  "$REPORT/results.json")
if "$BIN/python" -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" "$share" "$MIN_HEART"; then
  stage bundle-update-la "$BIN/cnexport" bundle-update-cine "$BUNDLE" --pipeline "$RUN/pipeline-la" --version "$VERSION"
  "$BIN/cnexport" verify "$BUNDLE"
else
  log "LA frames with a heart: $share < $MIN_HEART: the bundle's LA generator is NOT replaced"
fi
