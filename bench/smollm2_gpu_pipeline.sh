#!/usr/bin/env bash
# The SmolLM2 studies of the analysis and DySCO issues, run on one GPU (device tool):
# calibrate -> rank / cluster / plot -> pass-key accuracy (resumable; rerun to continue).
# Usage: bash bench/smollm2_gpu_pipeline.sh OUTDIR [STUDY_SECONDS]
set -uo pipefail
OUTDIR=${1:?output dir}; STUDY_SECONDS=${2:-300}
HS="python3 -m headscope"
GPU="--model smollm2-135m --device cuda --dtype float32 --quiet"
mkdir -p "$OUTDIR/heads" runs
run() { echo "+ $*" | tee -a "$OUTDIR/commands.log"; "$@"; }
if [ ! -f runs/heads-passkey-qr8.json ]; then
  run $HS calibrate $GPU --task passkey --lengths 1300,2500,4000 --examples 10 --seed 2000 --out runs/smollm2-passkey-calib
  run $HS rank runs/smollm2-passkey-calib --method qrscore --top 8 --bootstrap 1000 --out runs/heads-passkey-qr8.json \
    | tee "$OUTDIR/heads/rank-passkey-qrscore.txt"
  cp runs/heads-passkey-qr8.json "$OUTDIR/heads/"
  for task in needle qa; do
    run $HS calibrate $GPU --task $task --lengths 1024,2048,4096 --examples 14 --seed 1000 --out runs/smollm2-$task
    run $HS rank runs/smollm2-$task --method qrscore --top 16 --bootstrap 1000 --out "$OUTDIR/heads/smollm2-$task-qrscore16.json" \
      | tee "$OUTDIR/heads/rank-$task-qrscore.txt"
  done
  run $HS rank runs/smollm2-needle --method retrieval --top 16 --bootstrap 1000 --out "$OUTDIR/heads/smollm2-needle-retrieval16.json" \
    | tee "$OUTDIR/heads/rank-needle-retrieval.txt"
  run $HS cluster runs/smollm2-needle runs/smollm2-qa --out "$OUTDIR/heads/clusters" | tee "$OUTDIR/heads/cluster.txt"
  for task in needle qa; do
    run $HS plot score runs/smollm2-$task --method qrscore --out "$OUTDIR/heads/plots/$task" 2>&1 | tail -2
    run $HS plot stability runs/smollm2-$task --method qrscore --out "$OUTDIR/heads/plots/$task" 2>&1 | tail -2
    run $HS plot agreement runs/smollm2-$task --method qrscore --by target_length --out "$OUTDIR/heads/plots/$task" 2>&1 | tail -2
  done
  run $HS plot score runs/smollm2-needle --method retrieval --out "$OUTDIR/heads/plots/needle-retrieval" 2>&1 | tail -2
  run $HS plot agreement runs/smollm2-needle runs/smollm2-qa --method qrscore --by task --out "$OUTDIR/heads/plots/tasks" 2>&1 | tail -2
  run $HS plot clusters runs/smollm2-needle runs/smollm2-qa --out "$OUTDIR/heads/plots/clusters" 2>&1 | tail -2
  python3 - "$OUTDIR/heads" <<'PY' 2>&1 | tee "$OUTDIR/heads/span_mass.txt"
import sys, json
import numpy as np
import headscope
from headscope.analysis import qr_score, span_mass
out = {}
for task, kind in (("needle", "needle"), ("qa", "gold")):
    ds = headscope.open_capture(f"runs/smollm2-{task}")
    qr = qr_score(ds)
    mass = span_mass(ds, kind=kind)
    order = np.argsort(-qr.values.ravel())[:16]
    top = mass.values.ravel()[order]
    out[task] = {"top16_mean_span_mass": float(np.nanmean(top)), "all_heads_mean_span_mass": float(np.nanmean(mass.values)),
                 "span_share_of_context": float(np.nanmean(((ds.span_end - ds.span_start).where(ds.span_kind == kind).sum("span") / ds.query_start).values))}
    print(task, json.dumps(out[task]))
json.dump(out, open(sys.argv[1] + "/span_mass.json", "w"), indent=1)
PY
fi
run timeout "$STUDY_SECONDS" python3 bench/passkey_accuracy.py --device cuda --heads runs/heads-passkey-qr8.json \
  --lengths 1300,2500,4000 --prompts 100 --methods vanilla,dysco:3,random-heads:3,dysco:2 --out runs/passkey-study
cp -r runs/passkey-study "$OUTDIR/" 2>/dev/null
cd "$OUTDIR/.." && tar czf "$OUTDIR.tgz" "$(basename "$OUTDIR")" && echo "packed $OUTDIR.tgz"
true
