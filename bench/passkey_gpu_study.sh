#!/usr/bin/env bash
# The DySCO acceptance study on one GPU: calibrate QRScore heads on 30 pass-key prompts
# (seed 2000), then score held-out pass-key prompts (seed 5000) with N processes sharing the GPU
# (decoding a 135M model is Python-bound, so processes in parallel multiply throughput).
# Usage: bash bench/passkey_gpu_study.sh OUTDIR [PROCESSES] [SECONDS]
set -uo pipefail
OUTDIR=${1:?output dir}; N=${2:-8}; SECS=${3:-420}
mkdir -p "$OUTDIR/study" runs
HS="python3 -m headscope"
echo "+ $HS calibrate --task passkey-filler ... --seed 2000 --decode-steps 0" > "$OUTDIR/commands.log"
$HS calibrate --model smollm2-135m --device cuda --dtype float32 --quiet --task passkey-filler \
  --lengths 1300,2500,4000 --examples 10 --seed 2000 --decode-steps 0 --out runs/smollm2-passkey-filler-calib \
  > "$OUTDIR/calibrate.log" 2>&1
$HS rank runs/smollm2-passkey-filler-calib --method qrscore --top 8 --bootstrap 1000 \
  --out "$OUTDIR/heads-passkey-filler-qr8.json" > "$OUTDIR/rank.txt" 2>&1
STUDY="python3 bench/passkey_accuracy.py --device cuda --heads $OUTDIR/heads-passkey-filler-qr8.json \
  --task passkey-filler --lengths 1300,2500,4000 --prompts 100 --seed 5000 \
  --methods vanilla,dysco:3,random-heads:3,dysco:2 --out $OUTDIR/study"
echo "+ $STUDY --shard K/$N  (K = 0..$((N-1)), in parallel)" >> "$OUTDIR/commands.log"
for k in $(seq 0 $((N - 1))); do
  timeout "$SECS" $STUDY --shard "$k/$N" > "$OUTDIR/study/log-$k.txt" 2>&1 &
done
wait
$STUDY --summarize > "$OUTDIR/summary.txt" 2>&1
tail -12 "$OUTDIR/summary.txt"
