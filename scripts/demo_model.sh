#!/usr/bin/env bash
# Train the default model bundle end to end on the synthetic cohort at CPU scale, deterministically:
#   synthetic cohort -> CMR self-supervision -> ECG-CMR alignment -> fine-tuning of all heads
#   -> frame autoencoders + ECG2CMR denoisers (SA and LA) -> export -> bundle.
# Usage: scripts/demo_model.sh [RUN_DIR] [BUNDLE_DIR]    (sizes below are overridable through the environment)
# `make demo-model` runs it and installs the bundle as the package's default (cardiacnets/data/default-bundle).
# The 2,000-step long-axis denoiser below draws a heart in about a quarter of its frames (cnscreen --cine refuses such
# cines); scripts/la_generator.sh retrains it on the shipped aligned ECG encoder and replaces it in a bundle only when
# >= 95 % of its frames show a heart (benchmarks/results/demo-model.md, issue 23).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/demo}
BUNDLE=${2:-$RUN/bundle}
BIN=${BIN:-.venv/bin}
N=${DEMO_SUBJECTS:-1536}          # balanced synthetic cohort (70/10/20 split), seed 0: CMR SSL, fine-tuning, diffusion
N_PRETRAIN=${DEMO_PRETRAIN_SUBJECTS:-8192}  # balanced pretraining cohort, seed 100: ECG-CMR alignment
SSL_STEPS=${DEMO_SSL_STEPS:-400}
ALIGN_STEPS=${DEMO_ALIGN_STEPS:-800}
FT_STEPS=${DEMO_FT_STEPS:-300}    # fine-tuning budget: the experiment recipe's (training/configs/experiment-synthetic.yaml)
VAE_STEPS=${DEMO_VAE_STEPS:-800}   # frame autoencoders ("small": 4x down), trained at the cines' resolution
DIFF_STEPS=${DEMO_DIFF_STEPS:-2000} # denoisers ("cpu" preset: pooled ECG tokens + ECG in the timestep embedding)
DIFF_SA_STEPS=${DEMO_DIFF_SA_STEPS:-6000}  # the short-axis denoiser continues to here (a warm restart of the schedule)
FRAMES=${DEMO_FRAMES:-8}          # CPU recipe: 8 of the 50 frames ...
SCALE=${DEMO_CINE_SCALE:-2}       # ... at half resolution (SA 40 x 40, LA 48 x 48): a small latent for 2 CPU cores
# alignment and fine-tuning: bf16 autocast where the CPU computes bf16 natively (the 0.1.0 bundle's host had AVX-512
# BF16), fp32 elsewhere (emulated bf16 made a fine-tuning step ~10x slower on an AVX2-only host)
PRECISION=${DEMO_PRECISION:-$(grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo 2>/dev/null && echo bf16 || echo fp32)}
# shellcheck source=scripts/lib/stages.sh
source scripts/lib/stages.sh
demo_cohort
[ -d "$RUN/cmr/best" ] || stage cmr-ssl "$BIN/cntrain" cmr-ssl --data "$RUN/cohort" --n-subjects "$N" --model tiny --max-steps "$SSL_STEPS" \
  --batch-size 16 --out "$RUN/cmr" --set data.cache=true --set train.eval_every=100 --set train.ckpt_every=100
# ECG-CMR alignment on a larger pretraining cohort of its own (seed 100: no subject of the downstream cohort is seen),
# as the paper aligns on every UK Biobank pair and fine-tunes on subsets; only the ECG and the frozen towers' features
# of each subject are kept in memory.
[ -f "$RUN/pretrain-cohort/manifest.json" ] || stage pretrain-cohort "$BIN/cntrain" generate --n-subjects "$N_PRETRAIN" \
  --seed 100 --mode balanced --out "$RUN/pretrain-cohort"
[ -d "$RUN/align/best" ] || stage align "$BIN/cntrain" align --cmr "$RUN/cmr" --data "$RUN/pretrain-cohort" \
  --n-subjects "$N_PRETRAIN" --model tiny --max-steps "$ALIGN_STEPS" --batch-size 32 --out "$RUN/align" \
  --set task.cache_cmr_features=true --set task.augment=true --set task.min_crop_fraction=0.8 \
  --set task.p_time_flip=0.0 --set task.p_sign_flip=0.0 --set train.eval_every=200 --set train.ckpt_every=200 \
  --set train.warmup_steps=60 --set train.lr=0.0005 --set train.precision="$PRECISION"
finetune_stage() {  # finetune_stage NAME [--set ...]: all heads from the alignment run into $RUN/NAME
  local name=$1; shift
  [ -d "$RUN/$name/best" ] || stage "$name" "$BIN/cntrain" finetune --task all --init "$RUN/align" --data "$RUN/cohort" \
    --n-subjects "$N" --model tiny --batch-size 16 --out "$RUN/$name" --set data.cache=true --set task.max_epochs=30 \
    --set task.max_steps_cap="$FT_STEPS" --set task.warmup_epochs=3 --set task.patience=8 --set train.lr=0.0001 \
    --set train.precision="$PRECISION" "$@"
}
finetune_stage finetune
finetune_stage finetune-leadsets --set task.lead_masking=true  # the model for 6-lead and single-lead ECGs (below)
for view in sa la; do
  size=$(( $([ "$view" = sa ] && echo 80 || echo 96) / SCALE ))
  demo_vae "$view" "$size"
  [ -d "$RUN/ecg2cmr-$view/best" ] || stage "diffusion-$view" "$BIN/cntrain" diffusion --view "$view" \
    --vae "$RUN/vae-$view" --ecg-encoder "$RUN/align" --data "$RUN/cohort" --n-subjects "$N" --model cpu --max-steps "$DIFF_STEPS" \
    --batch-size 8 --out "$RUN/ecg2cmr-$view" --set data.cache=true --set task.num_frames="$FRAMES" \
    --set task.height="$size" --set task.width="$size" --set train.lr=0.0004 --set train.precision=fp32 \
    --set train.eval_every=500 --set train.ckpt_every=500
  if [ "$view" = sa ] && [ "$DIFF_SA_STEPS" -gt "$DIFF_STEPS" ] && ! grep -q "^  max_steps: $DIFF_SA_STEPS\$" "$RUN/ecg2cmr-sa/config.yaml"; then
    # The faithfulness report's model: the short-axis run resumed (exactly) with a longer cosine schedule.
    stage diffusion-sa-continued "$BIN/cntrain" diffusion --out "$RUN/ecg2cmr-sa" --resume --max-steps "$DIFF_SA_STEPS" \
      --set train.eval_every=1000 --set train.ckpt_every=1000
  fi
  [ -f "$RUN/pipeline-$view/pipeline.json" ] || stage "pipeline-$view" "$BIN/python" -c "
import sys
from cardiacnets.diffusion.pipeline import EcgToCmrPipeline
EcgToCmrPipeline.from_components(sys.argv[1], sys.argv[2], sys.argv[3]).save_pretrained(sys.argv[4])
" "$RUN/align" "$RUN/ecg2cmr-$view" "$RUN/vae-$view" "$RUN/pipeline-$view"
done
# FP32 screening only (dynamic INT8 results depend on the batch: benchmarks/results/precision-cpu.md). Trust artefacts
# (calibration, thresholds with bands, phenotype identities and intervals, the out-of-distribution check) are fitted on
# the training cohort extended to TRUST_N subjects with the same seed: subject i and its split are pure functions of
# (seed, i), so its first N subjects are the training cohort and its val/test splits gain unseen subjects.
TRUST_N=${DEMO_TRUST_SUBJECTS:-6000}
stage bundle "$BIN/cnexport" bundle --screening "$RUN/finetune" --diffusion "$RUN/pipeline-sa" \
  --diffusion "$RUN/pipeline-la" --variants "" --trust-data synthetic --trust-subjects "$TRUST_N" --seed 0 \
  --trust-report "$RUN/trust-report" \
  --no-cine-fp16 --cine-weights-fp16 --name cardiacnets-demo-synthetic --version 0.2.0 --out "$BUNDLE" --force
# Reduced lead sets: the lead-masked model, its trust artefacts fitted per lead set, added for those sets only (it
# costs some 12-lead performance, so 12-lead ECGs keep the model above: benchmarks/results/generalisation-synthetic)
stage bundle-leadsets "$BIN/cnexport" bundle-update-screening "$BUNDLE" --screening "$RUN/finetune-leadsets" \
  --version 0.3.0-leadsets --trust-data synthetic --trust-subjects "$TRUST_N" --seed 0 \
  --report "$RUN/trust-report-leadsets" --out "$RUN/bundle-leadsets" --force
stage bundle-add-leadsets "$BIN/cnexport" bundle-add-lead-sets "$BUNDLE" --from "$RUN/bundle-leadsets" --version 0.3.0
"$BIN/cnexport" verify "$BUNDLE"
du -sh "$BUNDLE" | tee -a "$RUN/timings.log"
log "bundle written to $BUNDLE"
