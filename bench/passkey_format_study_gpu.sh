#!/usr/bin/env bash
# The pass-key format study (issue 12) on the GPUs of one machine: N shards of `headscope ablate`
# over configs/passkey-format-study{,-random,-factors}.yaml, round-robin over the GPUs, working
# through the grid in priority phases (a run cut short leaves whole comparisons), all writing one
# shared cache. Modelled on bench/smollm2_study_gpu.sh.
#
#   bash bench/passkey_format_study_gpu.sh WORK [N_SHARDS] [TIMEOUT_S]
#
# Environment: DEVICE (cuda), BATCH (decode batch size; passed as --batch-size only where
# `headscope ablate --help` offers it), EXAMPLES and LENGTHS (override every phase: a dry run is
#   DEVICE=cpu EXAMPLES=2 LENGTHS=1024 bash bench/passkey_format_study_gpu.sh /tmp/pf-dry 2 3000).
# Every shard writes WORK/results-shardK-of-N.jsonl; with $OUT set (the device tool) they also go
# to $OUT/format-study-results.tgz. Afterwards assemble each part anywhere (nothing is decoded again):
#   headscope ablate --config configs/passkey-format-study.yaml --out WORK
#   headscope ablate --config configs/passkey-format-study-random.yaml --out WORK
#   headscope ablate --config configs/passkey-format-study-factors.yaml --out WORK
# The heads are the committed reports/smollm2-135m/heads-qrscore8-gpu.json (named in the configs);
# carry it with the working tree.
set -u
WORK=$1; N=${2:-16}; T=${3:-540}
DEVICE=${DEVICE:-cuda}
NGPU=$(python3 -c 'import torch; print(max(torch.cuda.device_count(), 1))')
# Shard k runs on the (k mod NGPU)-th GPU this script may use: an index into an outer
# CUDA_VISIBLE_DEVICES when one is set (CUDA_VISIBLE_DEVICES names physical GPUs, not visible ones).
read -r -a VISIBLE <<< "${CUDA_VISIBLE_DEVICES:+${CUDA_VISIBLE_DEVICES//,/ }}"
gpu_of() { if [ ${#VISIBLE[@]} -gt 0 ]; then echo "${VISIBLE[$(($1 % ${#VISIBLE[@]}))]}"; else echo $(($1 % NGPU)); fi; }
F=configs/passkey-format-study.yaml
R=configs/passkey-format-study-random.yaml
X=configs/passkey-format-study-factors.yaml
# config:lengths, most wanted first
PHASES="$F:2048,4096 $X:2048,4096 $F:1024,6144 $R:2048,4096 $R:1024,6144"
EXTRA=""
if python3 -m headscope ablate --help 2>/dev/null | grep -q -- "--batch-size"; then
  EXTRA="--batch-size ${BATCH:-1}"
fi
[ -n "${EXAMPLES:-}" ] && EXTRA="$EXTRA --examples $EXAMPLES"
mkdir -p "$WORK/logs"
start=$(date +%s)
for k in $(seq 0 $((N - 1))); do
  CUDA_VISIBLE_DEVICES=$(gpu_of $k) timeout "$T" bash -c "
    for p in $(echo $PHASES); do
      IFS=: read -r c l <<< \"\$p\"
      [ -n \"${LENGTHS:-}\" ] && l=${LENGTHS:-}
      python3 -m headscope ablate --config \$c --lengths \$l --out '$WORK' --device $DEVICE --shard $k/$N \
        --quiet --no-report $EXTRA || exit 1
    done" > "$WORK/logs/shard$k.log" 2>&1 &
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=$((failed + 1)); done
echo "$N shards on $NGPU GPU(s) finished in $(( $(date +%s) - start )) s; $failed did not complete"
cat "$WORK"/results*.jsonl | wc -l
if [ -n "${OUT:-}" ]; then
  (cd "$WORK" && tar czf "$OUT/format-study-results.tgz" results-shard*-of-"$N".jsonl logs)
fi
[ "$failed" -eq 0 ]
