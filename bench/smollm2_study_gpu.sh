#!/usr/bin/env bash
# The SmolLM2-135M ablation study (issue 5) on one GPU: N shards of `headscope ablate` share the
# GPU (decoding a 135M model is Python-bound, so one process leaves the GPU mostly idle), then
# one unsharded run per config assembles results.nc, summary.csv and report.md from the cache.
#
#   bash bench/smollm2_study_gpu.sh WORK FINAL [N_SHARDS] [TIMEOUT_S]
#
# WORK holds the shared cache and calibration; FINAL/strengths and FINAL/baselines get the
# assembled outputs (no calibration parts). Re-running resumes from WORK's cache.
set -u
WORK=$1; FINAL=$2; N=${3:-16}; T=${4:-540}
mkdir -p "$WORK/logs" "$FINAL"
CONFIGS="configs/smollm2-study.yaml configs/smollm2-study-baselines.yaml"
start=$(date +%s)
for k in $(seq 0 $((N - 1))); do
  timeout "$T" bash -c "for c in $CONFIGS; do python3 -m headscope ablate --config \$c --out '$WORK' \
      --device cuda --shard $k/$N --quiet --no-report || exit 1; done" > "$WORK/logs/shard$k.log" 2>&1 &
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=$((failed + 1)); done
echo "shards finished in $(( $(date +%s) - start )) s; $failed of $N did not complete"
cat "$WORK"/results*.jsonl | wc -l
if [ "$failed" -eq 0 ]; then
  for c in $CONFIGS; do
    name=$([ "$c" = configs/smollm2-study.yaml ] && echo strengths || echo baselines)
    python3 -m headscope ablate --config "$c" --out "$WORK" --device cuda --quiet > "$WORK/logs/assemble-$name.log" 2>&1 \
      && mkdir -p "$FINAL/$name" \
      && (cd "$WORK" && tar --exclude=./calibration --exclude=./logs -cf - .) | (cd "$FINAL/$name" && tar -xf -)
  done
fi
