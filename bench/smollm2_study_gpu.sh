#!/usr/bin/env bash
# The SmolLM2-135M ablation study (issue 5) on the GPUs of one machine: N shards of
# `headscope ablate` (decoding a 135M model is Python-bound, so one process leaves a GPU mostly
# idle), spread round-robin over the GPUs, each working through the grid in priority phases so
# that a run cut short leaves whole comparisons rather than a thin layer of every cell.
#
#   bash bench/smollm2_study_gpu.sh WORK [N_SHARDS] [TIMEOUT_S]
#
# WORK holds the shared cache (seed it with the committed caches to resume). Every shard writes
# WORK/results-shardK-of-N.jsonl; when $OUT is set (the device tool), all of them also go to
# $OUT/study-results.tgz. Afterwards assemble each part anywhere (every result is cached, so
# nothing is decoded again):
#   headscope ablate --config configs/smollm2-study.yaml --heads $HEADS --out WORK
# HEADS (default: the committed QRScore top 8) pins the head set, so the cache keys match the
# committed results without calibrating again.
set -u
WORK=$1; N=${2:-16}; T=${3:-540}
DEVICE=${DEVICE:-cuda}
HEADS=${HEADS:-reports/smollm2-135m/heads-qrscore8-gpu.json}
NGPU=$(python3 -c 'import torch; print(max(torch.cuda.device_count(), 1))')
S=configs/smollm2-study.yaml
B=configs/smollm2-study-baselines.yaml
# config:tasks:lengths, most wanted first (the last two are the parts already committed).
PHASES="$B:kv:1024,2048,4096 $B:passkey:4096 $S:kv:1024,2048,4096 $B:passkey,kv:6144 $S:passkey,kv:6144
        $S:passkey:1024,2048,4096 $B:passkey:1024,2048"
mkdir -p "$WORK/logs"
start=$(date +%s)
for k in $(seq 0 $((N - 1))); do
  CUDA_VISIBLE_DEVICES=$((k % NGPU)) timeout "$T" bash -c "
    for p in $(echo $PHASES); do
      IFS=: read -r c t l <<< \"\$p\"
      python3 -m headscope ablate --config \$c --tasks \$t --lengths \$l --heads '$HEADS' --out '$WORK' \
        --device $DEVICE --shard $k/$N --quiet --no-report || exit 1
    done" > "$WORK/logs/shard$k.log" 2>&1 &
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=$((failed + 1)); done
echo "$N shards on $NGPU GPU(s) finished in $(( $(date +%s) - start )) s; $failed did not complete"
cat "$WORK"/results*.jsonl | wc -l
# On the device tool, hand the shard caches back as one file (it returns only a few files a call).
if [ -n "${OUT:-}" ]; then
  (cd "$WORK" && tar czf "$OUT/study-results.tgz" results-shard*-of-"$N".jsonl logs)
fi
