# Shared by scripts/demo_model.sh and scripts/la_generator.sh: timed, logged stages and the stages both recipes run.
# Source it after setting RUN (the run directory), BIN (the venv's bin), N (cohort size) and VAE_STEPS.
mkdir -p "$RUN"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$RUN/timings.log" >&2; }
stage() { local name=$1; shift; local t0=$SECONDS; log "start $name"; "$@"; log "done  $name in $((SECONDS - t0)) s"; }
export PYTHONHASHSEED=0

# The balanced synthetic cohort (seed 0) the downstream stages train on.
demo_cohort() {
  [ -f "$RUN/cohort/manifest.json" ] || stage cohort "$BIN/cntrain" generate --n-subjects "$N" --seed 0 \
    --mode balanced --out "$RUN/cohort"
}

# The frame autoencoder of one view (`small`, 4x down) at SIZE x SIZE: demo_vae VIEW SIZE
demo_vae() {
  local view=$1 size=$2
  [ -d "$RUN/vae-$view/best" ] || stage "vae-$view" "$BIN/cntrain" vae --view "$view" --data "$RUN/cohort" \
    --n-subjects "$N" --model small --max-steps "$VAE_STEPS" --batch-size 8 --out "$RUN/vae-$view" \
    --set data.cache=true --set task.image_size="$size" --set train.lr=0.001 --set train.warmup_steps=50 \
    --set train.precision=fp32 --set train.eval_every=400
}
