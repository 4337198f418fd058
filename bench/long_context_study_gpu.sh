#!/usr/bin/env bash
# The long-context study (issue 20) on the device tool's GPU machine, with headscope's own CLI:
# pilot (difficulty per model x length x family) -> evaluation (methods paired on the same prompts,
# priority stages) -> raw results (ablate caches, choice.json, head sets) bundled under $OUT.
#
# Device calls (the machine stays warm between calls; files written outside the repo copy, under
# $LC_HOME, default /root/lc-gpu, stay until it goes back). Here, once, in the checkout the calls
# run from (slices of 28 MB: with the repository, 33 MB of tracked files on 2026-12-07 evening and growing
# with the results, a call stays under its 64 MiB; 34 MB slices stopped fitting that day. Re-split
# when it grows: `stash` takes the carried manifest over a stashed one):
#   python -c "from headscope.gguf_parts import assemble; from headscope.models import GEMMA3_270M_GGUF as G, \
#     QWEN25_CODER_05B_GGUF as Q; assemble(G, '/tmp/gemma-3-270m-q4_k_m.gguf'); \
#     assemble(Q, '/tmp/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf')"
#   python bench/qwen_slices.py split /tmp/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf .gpu/qwen/slices --size 28000000
#   python bench/qwen_slices.py split /tmp/gemma-3-270m-q4_k_m.gguf .gpu/gemma/slices --size 28000000
#   (optional, qwen15: the same with QWEN25_CODER_15B_GGUF, /tmp/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf and
#   .gpu/qwen15/slices: 40 slices; Qwen 0.5B 18, Gemma 10)
# There:
#   bash bench/long_context_study_gpu.sh setup         # carry .gpu/whl (+ both manifests): wheels into $LC_HOME/site
#   bash bench/long_context_study_gpu.sh stash MODEL   # MODEL qwen|gemma|qwen15; carry .gpu/MODEL/slices/{manifest.json,<one slice>}
#   bash bench/long_context_study_gpu.sh start [SECS]  # daemon (setsid: outlives the call) running `run SECS`; returns at once
#   bash bench/long_context_study_gpu.sh status        # stages done, results so far, the log's tail
#   bash bench/long_context_study_gpu.sh wait [SECS]   # block (keeping the machine busy) until the daemon ends; bundle
#   bash bench/long_context_study_gpu.sh collect       # tables + $OUT/long-context.tgz (+ long-context-summary.md)
#   bash bench/long_context_study_gpu.sh stop          # end the daemon's session
#   bash bench/long_context_study_gpu.sh run [SECS]    # the same work in the foreground (default 570 s)
# A model whose slices are all stashed is assembled, checked (pinned SHA-256) and converted by
# `headscope models --prepare` when its first stage comes; `start` can begin before the slices
# arrive: a stage whose model's slices are not all there yet goes to the back of the queue (with the
# later stages of that model) while another model's stages can run, and once nothing else can, its
# model waits up to SLICE_WAIT s for them.
#
# Stages, most wanted first (STAGES overrides; each MODEL:STEP[:LENGTHS], MODEL a key of ALIAS below):
#   pilot   vanilla on the pilot split of configs/long-context-pilot.yaml, then
#           bench/long_context_choose.py picks each cell's level (nearest 50% inside [20%, 80%]) into
#           $WORK/choice.json (kept, committed with the results; a level is never re-picked once chosen)
#   heads   the head sets: Qwen's committed QRScore / retrieval-score top 8; for any other model
#           `headscope calibrate` (needle with CAL_STEPS greedy steps, qa) + `headscope rank`; and
#           3 random sets of 8 (seeds 1-3); all under $WORK/heads/MODEL/heads-*.json
#   e1      vanilla, DySCO (QRScore heads) and dysco-onepass (QRScore heads), strength 2
#   e2      DySCO with retrieval-score heads and with each random set, and dysco-static, strength 2
#   e3      DySCO, dysco-onepass and dysco-static with QRScore heads at strength 3
#   e4      DySCO with retrieval-score heads and with each random set at strength 3
#   ea      DySCO (QRScore heads) with strength auto, chosen per cell from AUTO_GRID (2,3) on DEV_N (16)
#           dev-split prompts (tuning seed 200); the held-out decodes at the chosen strength are e1's / e3's
#   eaoff   ea with strength 1 (no rescaling) added to the grid, so that auto can fall back to vanilla
#           (the dev decodes at 2 and 3 are ea's, cached; the tables give both choices)
#   ctl     the schedule control (bench/schedule_control.py): vanilla on DySCO's warm-up schedule, under
#           $WORK/ctl/MODEL (not in the study's tables' Holm families: its own section)
#   ga      e1's cells again, recording for the first GOLD_N (20) prompts per cell the attention the
#           selected heads and all heads put on the gold span at each step (abl/MODEL/gold_attention.jsonl)
# Each evaluation stage runs `headscope ablate --config configs/long-context-eval.yaml --tasks
# <chosen levels> --lengths L` per length in NSHARDS shards (--batch-size BATCH), examples 100; a stage
# is marked done under $WORK/done only when every shard finished, and every decode is cached
# ($WORK/abl/MODEL/results-shard*.jsonl), so a cut stage resumes with no decode repeated.
# FROM_REPO=1: seed $WORK with the committed reports/long-context/ (choice, heads, caches) first.
#
# Knobs (environment): DEVICE (cuda), DTYPE (bfloat16), NSHARDS (8 per GPU over 100 GB, else 4), BATCH (4 over
# 100 GB, else 2: 8 x 4 ran out of memory at 32k on an 80 GB H100), EXAMPLES
# (eval config's 100), PILOT_EXAMPLES (pilot config's 24), PILOT_TASKS (the pilot config's levels;
# comma-separated, each ending +split=pilot), BAND ("0.2,0.8"), STAGES,
# CAL_LENGTHS (4096,8192), CAL_N (5), CAL_STEPS (32), SLICE_WAIT (0; `start`: 900), WORK ($LC_HOME/work).
# CPU dry run (tiny lengths; SmolLM2 stands in for Qwen: its heads are calibrated, as Gemma's are):
#   PATH=/work/main/.venv/bin:$PATH DEVICE=cpu DTYPE=float32 NSHARDS=2 BATCH=2 EXAMPLES=1 PILOT_EXAMPLES=1 \
#   PILOT_TASKS=mkey+distractors=1+split=pilot,chain+hops=1+split=pilot BAND=0,1 CAL_LENGTHS=512 CAL_N=2 \
#   CAL_STEPS=8 LC_HOME=/tmp/lc-dry/home HEADSCOPE_HOME=~/.cache/headscope OUT=/tmp/lc-dry/out \
#   STAGES="smollm2:heads smollm2:pilot:600 smollm2:e1:600 smollm2:e2:600" bash bench/long_context_study_gpu.sh run 3000
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
MODE=${1:?usage: bench/long_context_study_gpu.sh setup|stash MODEL|start|run|status|wait|collect|stop [SECONDS]}
LC_HOME=${LC_HOME:-/root/lc-gpu}
WORK=${WORK:-$LC_HOME/work}
# qwen15 (Qwen2.5-Coder-1.5B) is in no default stage: name its stages in STAGES. Only the key qwen
# has committed head sets: qwen15's are calibrated there (headscope calibrate + rank), as any model's.
declare -A ALIAS=([qwen]=qwen2.5-coder-0.5b [gemma]=gemma3-270m [smollm2]=smollm2-135m [qwen15]=qwen2.5-coder-1.5b)
declare -A GGUF=([qwen]=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf [gemma]=gemma-3-270m-q4_k_m.gguf
  [qwen15]=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf)
# The default order (2026-12-07): finish Qwen at 16k-32k (done in the repository but for eaoff),
# then Gemma's pilot and first stage at all three lengths (its head sets are in the repository,
# calibrated on the CPU), Qwen at 8k, the rest of both models, and e4 (other heads at strength 3) last,
# each model's schedule control (ctl) after its e4.
STAGES=${STAGES:-"qwen:heads qwen:pilot:16000,32000 qwen:e1:16000 qwen:e1:32000 qwen:e3:16000 qwen:e2:16000
  qwen:ea:16000 qwen:ga:16000 qwen:e3:32000 qwen:e2:32000 qwen:ea:32000 qwen:ga:32000
  qwen:eaoff:16000 qwen:eaoff:32000
  gemma:heads gemma:pilot:8000,16000,32000 gemma:e1:8000,16000,32000
  qwen:pilot:8000 qwen:e1:8000
  gemma:e3:8000,16000,32000 gemma:e2:8000,16000,32000 qwen:e3:8000 qwen:e2:8000
  gemma:ea:8000,16000,32000 gemma:eaoff:8000,16000,32000 gemma:ga:8000,16000,32000 qwen:ea:8000
  qwen:eaoff:8000 qwen:ga:8000
  qwen:e4:16000,32000 qwen:e4:8000 qwen:ctl:8000 gemma:e4:8000,16000,32000 gemma:ctl:8000"}
PILOT=configs/long-context-pilot.yaml
EVAL=configs/long-context-eval.yaml
QWEN_REP=reports/qwen2.5-coder-0.5b
export HEADSCOPE_HOME=${HEADSCOPE_HOME:-$LC_HOME/hs}
export PYTHONPATH="$ROOT:$LC_HOME/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} TOKENIZERS_PARALLELISM=false
# The study was decoded on the matrix-product attention path (before the fused Triton kernels became
# the default on CUDA, 2026-12-07): its cached results record "attention": "matrix", and a run on the
# other path would decode them all again, so the study keeps to it unless told otherwise.
export HEADSCOPE_FUSED_DECODE=${HEADSCOPE_FUSED_DECODE:-0}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
HS="python3 -m headscope"
mkdir -p "$LC_HOME/logs" "$WORK/done" "$WORK/logs" "$WORK/heads" "$WORK/abl" "$WORK/pilot"
LOG=$WORK/commands.log
TIMES=$WORK/timings.tsv
step() { echo "+ $*" >> "$LOG"; }
stamp() { echo -e "$1\t$2\t$(date -u +%FT%TZ)" >> "$TIMES"; echo "[$(date +%T)] $1: $2 s"; }

bundle() {  # tables + one tarball of everything to commit (the device returns at most 8 files)
  python3 bench/long_context_tables.py "$WORK" > /dev/null 2>&1 || echo "tables: nothing to tabulate yet"
  [ -n "${OUT:-}" ] || return 0
  (cd "$WORK" && tar czf "$OUT/long-context.tgz" --exclude='*.partial*' choice.json tables.md done abl/*/results*.jsonl \
     ctl/*/results*.jsonl abl/*/gold_attention.* pilot/*/results*.jsonl heads logs commands.log timings.tsv gpus.txt cal/*/*/run.json rank-*.txt 2>/dev/null)
  { echo "# long-context study, $(date -u +%FT%TZ)"; cat "$WORK/gpus.txt" 2>/dev/null; echo '```'
    cat "$TIMES" 2>/dev/null; ls "$WORK/done"; echo '```'; cat "$WORK/tables.md" 2>/dev/null; } > "$OUT/long-context-summary.md"
  ls -la "$OUT"
}

case $MODE in
setup)
  [ -d .gpu/whl ] && { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$LC_HOME/site" .gpu/whl/*.whl || exit 1; }
  python3 -c "import torch, transformers, nnsight, zarr, dask, gguf, headscope; print('torch', torch.__version__, \
'GPUs', torch.cuda.device_count())"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee "$WORK/gpus.txt"
  exit 0 ;;
stash)
  m=${2:?stash qwen|gemma|qwen15}
  python3 bench/qwen_slices.py stash ".gpu/$m/slices" "$LC_HOME/slices/$m"; exit $? ;;
start)
  # Prompts built elsewhere (carry .gpu/prompts: files of headscope's prompt cache, keyed by tokenizer
  # and generator source, so a mismatch is simply not found) spare the GPU machine building them.
  if [ -d .gpu/prompts ]; then mkdir -p "$HEADSCOPE_HOME/prompts" && cp --update=none .gpu/prompts/*.json.gz "$HEADSCOPE_HOME/prompts/"; fi
  # The daemon runs from a snapshot: every later call replaces the repository copy.
  src=$LC_HOME/repo; rm -rf "$src" && mkdir -p "$src"
  tar --exclude=./.gpu --exclude=./.venv --exclude=./.git -cf - . | tar -xf - -C "$src"
  SLICE_WAIT=${SLICE_WAIT:-900} setsid nohup bash "$src/bench/long_context_study_gpu.sh" run "${2:-1500}" \
    > "$LC_HOME/logs/run.log" 2>&1 < /dev/null &
  echo $! > "$LC_HOME/logs/run.pid"; echo "started the study (pid $!, log $LC_HOME/logs/run.log)"; exit 0 ;;
stop)
  sid=$(cat "$LC_HOME/logs/run.pid" 2>/dev/null) || { echo "no daemon"; exit 0; }
  pkill -s "$sid" && echo "stopped session $sid"; exit 0 ;;
status)
  ls "$WORK/done" 2>/dev/null | tr '\n' ' '; echo
  for d in "$WORK"/pilot/* "$WORK"/abl/*; do [ -d "$d" ] && echo "$d: $(cat "$d"/results*.jsonl 2>/dev/null | wc -l) results"; done
  tail -8 "$LC_HOME/logs/run.log" 2>/dev/null
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
  exit 0 ;;
wait)
  # Keeps the call (and so the machine) busy while the daemon works: until it ends or SECS pass.
  end=$(( $(date +%s) + ${2:-540} )); pid=$(cat "$LC_HOME/logs/run.pid" 2>/dev/null)
  while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 10; done
  kill -0 "${pid:-0}" 2>/dev/null && echo "daemon still running" || echo "daemon finished"
  tail -15 "$LC_HOME/logs/run.log"; bundle; exit 0 ;;
collect) bundle; exit 0 ;;
run) ;;
*) echo "unknown mode $MODE" >&2; exit 2 ;;
esac

T=${2:-570}
START=$(date +%s)
DEADLINE=$((START + T - 60))          # leave time for the tables and the bundle
left() { echo $((DEADLINE - $(date +%s))); }
budget() { local s; s=$(left); echo $(( s > 1 ? s : 1 )); }
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}
# Shards x batch by the card's memory: on an 80 GB H100, 8 shards x 4 prompts at 32k ran out of
# memory (2026-12-06: prefill of a 32k batch of 4 took ~17 GB a process); 4 x 2 fitted. 139 GB H200s
# ran 16 x 4 at 32k (the Qwen study).
GPU_MIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1)
BIG=0; [ "${GPU_MIB:-0}" -gt 100000 ] && BIG=1
BATCH=${BATCH:-$([ $BIG = 1 ] && echo 4 || echo 2)}
BAND=${BAND:-0.2,0.8}
CAL_LENGTHS=${CAL_LENGTHS:-4096,8192}
CAL_N=${CAL_N:-5}
CAL_STEPS=${CAL_STEPS:-32}
AUTO_GRID=${AUTO_GRID:-2,3}   # ea: the strengths auto chooses from (the fixed ones of e1 / e3)
DEV_N=${DEV_N:-16}            # ea: dev-split prompts per task and length it chooses on
GOLD_N=${GOLD_N:-20}          # ga: prompts per cell whose attention on the gold span is recorded
SLICE_WAIT=${SLICE_WAIT:-0}
NGPU=1
[ "$DEVICE" = cuda ] && NGPU=$(python3 -c 'import torch; print(max(torch.cuda.device_count(), 1))')
NSHARDS=${NSHARDS:-$(( (BIG == 1 ? 8 : 4) * NGPU ))}
gpu_of() { [ "$DEVICE" = cuda ] && echo "CUDA_VISIBLE_DEVICES=$(($1 % NGPU))" || echo "CUDA_VISIBLE_DEVICES="; }
# CUDA MPS (MPS=0: off): the shards' small kernels run side by side instead of in time slices. A
# probe allocation must succeed under it, or it is switched off again before any shard starts.
if [ "$DEVICE" = cuda ] && [ "${MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control > /dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=$LC_HOME/mps CUDA_MPS_LOG_DIRECTORY=$LC_HOME/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if nvidia-cuda-mps-control -d 2> /dev/null \
      && python3 -c "import torch; torch.zeros(1, device='cuda').sum().item()" > /dev/null 2>&1; then
    trap 'echo quit | nvidia-cuda-mps-control' EXIT; echo "CUDA MPS on" | tee -a "$LOG"
  else
    echo quit | nvidia-cuda-mps-control 2> /dev/null; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    echo "CUDA MPS: could not start it or its probe failed; off" | tee -a "$LOG"
  fi
fi
EX_OPT=${EXAMPLES:+--examples $EXAMPLES}
PEX_OPT="${PILOT_EXAMPLES:+--examples $PILOT_EXAMPLES} ${PILOT_TASKS:+--tasks $PILOT_TASKS}"
COMMON="--device $DEVICE --dtype $DTYPE --batch-size $BATCH --quiet --no-report"
if [ "${FROM_REPO:-0}" = 1 ] && [ -d reports/long-context ]; then
  # The committed commands.log first: a sitting's lines are appended to the earlier sittings'
  # (cp -n would keep this sitting's file, already begun by the MPS line above); once per machine.
  [ -f reports/long-context/commands.log ] && ! grep -q '^+ seeded' "$LOG" 2>/dev/null && { cat reports/long-context/commands.log "$LOG" > "$LOG.seeded" \
    && mv "$LOG.seeded" "$LOG"; }
  cp -rn reports/long-context/. "$WORK/" && step "seeded $WORK from reports/long-context"
fi

prepare() {  # prepare KEY: the converted model in $HEADSCOPE_HOME, from stashed slices if need be
  local key=$1 alias=${ALIAS[$1]} t waited=0
  python3 -c "from headscope.models import prepared; raise SystemExit(not prepared('$alias'))" && return 0
  [ -n "${GGUF[$key]:-}" ] || { echo "$alias: not prepared and no slices known"; return 1; }
  t=$(date +%s)
  # assemble checks every slice and the whole file; it fails (writing nothing) while slices are missing
  until python3 bench/qwen_slices.py assemble "$LC_HOME/slices/$key" "$HEADSCOPE_HOME/gguf/$alias/${GGUF[$key]}" \
        > "$WORK/logs/assemble-$key.log" 2>&1; do
    if [ "$waited" -ge "$SLICE_WAIT" ] || [ "$(left)" -lt 120 ]; then
      echo "$alias: $(tail -1 "$WORK/logs/assemble-$key.log"); its stages skipped"; return 1
    fi
    sleep 10; waited=$((waited + 10))
  done
  step "$HS models --prepare $alias"
  $HS models --prepare "$alias" > "$WORK/logs/convert-$key.log" 2>&1 || { tail -3 "$WORK/logs/convert-$key.log"; return 1; }
  stamp "prepare-$key" $(( $(date +%s) - t ))
}

heads() {  # heads KEY: $WORK/heads/ALIAS/heads-{qrscore8,retrieval8,random8-s1..3}.json
  local key=$1 alias=${ALIAS[$1]} dir=$WORK/heads/${ALIAS[$1]} t s cal=$WORK/cal/${ALIAS[$1]}
  mkdir -p "$dir"
  if [ "$key" = qwen ]; then
    cp "$QWEN_REP/heads-qrscore8.json" "$QWEN_REP/heads-retrieval8.json" "$dir/"
    step "heads: the committed $QWEN_REP/heads-{qrscore8,retrieval8}.json"
  elif [ ! -f "$dir/heads-qrscore8.json" ]; then
    t=$(date +%s)
    for task in needle qa; do
      steps=0; [ $task = needle ] && steps=$CAL_STEPS
      for s in 0 1; do
        cmd="$HS calibrate --model $alias --device $DEVICE --dtype $DTYPE --task $task --lengths $CAL_LENGTHS"
        cmd="$cmd --examples $CAL_N --decode-steps $steps --seed $s --out $cal/$task-s$s --quiet"
        step "$cmd"; env $(gpu_of $s) timeout "$(budget)" $cmd > "$WORK/logs/cal-$key-$task-s$s.log" 2>&1 &
      done
    done
    wait
    step "$HS rank (needle + qa) --method qrscore --top 8"
    $HS rank "$cal"/needle-s* "$cal"/qa-s* --method qrscore --top 8 --bootstrap 1000 --out "$dir/heads-qrscore8.json" \
      --quiet > "$WORK/rank-qrscore-$key.txt" || return 1
    step "$HS rank (needle) --method retrieval --top 8"
    $HS rank "$cal"/needle-s* --method retrieval --top 8 --bootstrap 1000 --out "$dir/heads-retrieval8.json" --quiet \
      > "$WORK/rank-retrieval-$key.txt" 2>&1 || echo "$alias: no retrieval-score heads ($(tail -1 "$WORK/rank-retrieval-$key.txt"))"
    stamp "heads-$key" $(( $(date +%s) - t ))
  fi
  # Random sets through headscope's API (the ablate label random:K draws with the evaluation seed only).
  python3 -c "import sys; from headscope.models import peek_model; from headscope.heads import random_heads
g, _ = peek_model('$alias')
for s in (1, 2, 3): random_heads(g, 8, seed=s).save(f'$dir/heads-random8-s{s}.json')"
}

entries() {  # entries KEY STEP: one "METHODS HEADS STRENGTHS" line per ablate call of an evaluation stage
  local d=$WORK/heads/${ALIAS[$1]} qr ret rnd
  qr=$d/heads-qrscore8.json; ret=""; [ -f "$d/heads-retrieval8.json" ] && ret=$d/heads-retrieval8.json,
  rnd=$d/heads-random8-s1.json,$d/heads-random8-s2.json,$d/heads-random8-s3.json
  case $2 in
    e1) echo "vanilla,dysco,dysco-onepass $qr 2" ;;
    e2) echo "dysco $ret$rnd 2"; echo "dysco-static $qr 2" ;;
    e3) echo "dysco,dysco-onepass,dysco-static $qr 3" ;;
    e4) echo "dysco $ret$rnd 3" ;;
    ea|eaoff) echo "dysco $qr auto" ;;
    ga) echo "vanilla,dysco,dysco-onepass $qr 2" ;;
    ctl) echo "vanilla-on-schedule $qr 1" ;;
  esac
}

prompts() {  # prompts KEY TASKS LENGTH [CONFIG N]: build a stage's prompts once, one process per task, into
  # headscope's prompt cache ($HEADSCOPE_HOME/prompts), so that the shards (each of which needs every
  # prompt to find its own) and later stages read them instead of building them again. CONFIG (the
  # evaluation's by default) gives the seed, N (0: CONFIG's) the count. The log records the cache
  # key's two fingerprints (tokenizer, generator source), to compare with prompts built elsewhere.
  local alias=${ALIAS[$1]} t task pids=() config=${4:-$EVAL} count=${5:-${EXAMPLES:-0}}
  t=$(date +%s)
  for task in ${2//,/ }; do
    python3 -c "import sys; from headscope.ablate.config import AblationConfig; from headscope.models import peek_model
from headscope.evaluate import prompt_cache as pc
c = AblationConfig.from_yaml('$config')
g, tok = peek_model('$alias')
n = int('${count:-0}') or c.examples
print('fingerprints: tokenizer', pc._tokenizer_fingerprint(tok), 'source', pc._source_fingerprint(), flush=True)
pc.cached_eval_examples('$task', tok, $3, n, c.seed, max_context=g.max_context or None)" \
      > "$WORK/logs/prompts-$1-$task-$3.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  stamp "prompts-$1-$3" $(( $(date +%s) - t ))
}

# A finished stage's marker: $WORK/done/MODEL_STEP_LENGTHS (no ':' in a file name, which some
# checkouts of the committed markers could not hold)
marker() { local m=${1//:/_}; echo "$WORK/done/${m//,/+}"; }

declare -A PROMPTS_PID=()
prebuild() {  # prebuild KEY: build, in the background, the prompts of every length KEY's evaluation stages
  # still need, so that building the longer lengths' prompts (CPU) overlaps the shorter ones' decoding (GPU)
  local key=$1 st k w ls L tasks
  for st in $STAGES; do
    IFS=: read -r k w ls <<< "$st"
    [ "$k" = "$key" ] && [ ! -f "$(marker "$st")" ] || continue
    case $w in e1|e2|e3|e4|ea|eaoff|ga|ctl) ;; *) continue ;; esac
    for L in ${ls//,/ }; do
      [ -z "${PROMPTS_PID[$key:$L]:-}" ] || continue
      tasks=$(python3 bench/long_context_choose.py tasks "$WORK/choice.json" --model "${ALIAS[$key]}" --length "$L" \
        2>/dev/null) && [ -n "$tasks" ] || continue
      prompts "$key" "$tasks" "$L" &
      PROMPTS_PID[$key:$L]=$!
    done
  done
}

shards() {  # shards TAG SCRIPT: NSHARDS copies of SCRIPT ($SHARD = k/N in it); all must finish
  local tag=$1 script=$2 failed=0 k pids=()
  for k in $(seq 0 $((NSHARDS - 1))); do
    env $(gpu_of $k) SHARD=$k/$NSHARDS timeout "$(budget)" bash -c "$script" >> "$WORK/logs/$tag-shard$k.log" 2>&1 &
    pids+=($!)
  done
  # its own shards only: prompts being built in the background for later stages are not waited for
  for job in "${pids[@]}"; do wait "$job" || failed=$((failed + 1)); done
  [ "$failed" = 0 ] || echo "$tag: $failed of $NSHARDS shards stopped early (deadline or error; see $WORK/logs/$tag-shard*.log)"
  return "$failed"
}

ready_now() {  # ready_now KEY: its model converted already, or every slice stashed (sizes only)
  python3 -c "from headscope.models import prepared; raise SystemExit(not prepared('${ALIAS[$1]}'))" 2>/dev/null \
    || python3 bench/qwen_slices.py ready "$LC_HOME/slices/$1" 2>/dev/null
}

# A stage whose model's slices are still arriving goes to the back of the queue while a later
# stage's model is ready (2026-12-07: Gemma's stages, first in the order, waited 15 min for slices
# while Qwen's were all there), and so do the later stages of that model, in their order.
declare -A UNAVAILABLE=() DEFERRED=() DEFERRING=()
read -r -a queue <<< "$(echo $STAGES)"
while [ "${#queue[@]}" -gt 0 ]; do
  stage=${queue[0]}; queue=("${queue[@]:1}")
  IFS=: read -r key what lens <<< "$stage"
  alias=${ALIAS[$key]}
  marker=$(marker "$stage")
  [ -f "$marker" ] && { echo "$stage: done before"; continue; }
  [ -n "${UNAVAILABLE[$key]:-}" ] && continue
  [ "$(left)" -lt 60 ] && { echo "deadline: $stage and later stages not started"; break; }
  if [ -z "${DEFERRED[$stage]:-}" ]; then
    defer=${DEFERRING[$key]:-}
    if [ -z "$defer" ] && ! ready_now "$key"; then
      for later in "${queue[@]}"; do
        k=${later%%:*}
        [ "$k" != "$key" ] && [ -z "${UNAVAILABLE[$k]:-}" ] && [ ! -f "$(marker "$later")" ] && ready_now "$k" \
          && { defer=1; break; }
      done
    fi
    if [ -n "$defer" ]; then
      DEFERRED[$stage]=1; DEFERRING[$key]=1; queue+=("$stage")
      echo "$stage: $alias's slices are not all here yet; later stages first"; continue
    fi
  fi
  prepare "$key" || { UNAVAILABLE[$key]=1; continue; }
  t=$(date +%s)
  case $what in
    heads) heads "$key" && touch "$marker" ;;
    pilot)
      # Its prompts first, every level and length at once (otherwise every shard builds all of them)
      ptasks=${PILOT_TASKS:-$(python3 -c "from headscope.ablate.config import AblationConfig as A
print(','.join(A.from_yaml('$PILOT').tasks))")}
      ppids=()
      for L in ${lens//,/ }; do prompts "$key" "$ptasks" "$L" "$PILOT" "${PILOT_EXAMPLES:-0}" & ppids+=($!); done
      wait "${ppids[@]}"
      cmd="$HS ablate --config $PILOT --model $alias --lengths $lens $PEX_OPT --out $WORK/pilot/$alias $COMMON"
      step "$cmd --shard k/$NSHARDS"
      if shards "$key-pilot" "$cmd --shard \$SHARD"; then
        # Record the pick (kept: cells already chosen are never re-picked; new lengths are added).
        python3 bench/long_context_choose.py choose "$WORK"/pilot/*/results*.jsonl --config $PILOT --band "$BAND" \
          ${PILOT_TASKS:+--tasks $PILOT_TASKS} \
          ${PILOT_EXAMPLES:+--min-n $PILOT_EXAMPLES} --keep "$WORK/choice.json" --out "$WORK/choice.json" | tee -a "$LOG"
        touch "$marker"
      fi ;;
    e1|e2|e3|e4|ea|eaoff|ga|ctl)
      [ -f "$(marker "$key:heads")" ] || { echo "$stage: no head sets for $alias"; continue; }
      loop=""; undecided=""
      # ea (auto strength: its dev-split tuning decodes, which every shard would repeat) and ga
      # (attention on gold, recorded when the grid is assembled) run as one process; the
      # evaluation decodes they need are those of e1 / e3, cached.
      extra="--shard \$SHARD"
      [ "$what" = ea ] && extra="--strength-grid $AUTO_GRID --dev-examples $DEV_N"
      [ "$what" = eaoff ] && extra="--strength-grid 1,$AUTO_GRID --dev-examples $DEV_N"
      [ "$what" = ga ] && extra="--gold-attention $GOLD_N"
      # ctl: the schedule control (bench/schedule_control.py adds the method), in its own folder so
      # that the study's tables and Holm families are untouched; tables.md has its own section
      hs=$HS out=$WORK/abl/$alias
      [ "$what" = ctl ] && hs="python3 bench/schedule_control.py" out=$WORK/ctl/$alias
      for L in ${lens//,/ }; do
        tasks=$(python3 bench/long_context_choose.py tasks "$WORK/choice.json" --model "$alias" --length "$L") \
          || { undecided="$undecided $L"; continue; }
        [ -n "$tasks" ] || { echo "$stage: no level in the band at $L (see choice.json)"; continue; }
        [ -n "${PROMPTS_PID[$key:$L]:-}" ] || prebuild "$key"
        if [ -n "${PROMPTS_PID[$key:$L]:-}" ]; then wait "${PROMPTS_PID[$key:$L]}" 2>/dev/null
        else prompts "$key" "$tasks" "$L"; fi
        while read -r methods hsets strengths; do
          loop="$loop $hs ablate --config $EVAL --model $alias --tasks $tasks --lengths $L --methods $methods"
          loop="$loop --heads $hsets --strengths $strengths $EX_OPT --out $out $COMMON $extra &&"
        done < <(entries "$key" "$what")
      done
      [ -z "$undecided" ] || echo "$stage: no pilot decision at$undecided yet (run its pilot stage first)"
      if [ -n "$loop" ]; then
        if [ "$what" = ea ] || [ "$what" = eaoff ] || [ "$what" = ga ]; then
          step "$stage (one process):$loop"
          timeout "$(budget)" bash -c "${loop% &&}" >> "$WORK/logs/$key-$what.log" 2>&1 && [ -z "$undecided" ] \
            && touch "$marker"
        else
          step "$stage (each shard in turn):$loop"
          shards "$key-$what" "${loop% &&}" && [ -z "$undecided" ] && touch "$marker"
        fi
      elif [ -z "$undecided" ]; then touch "$marker"; fi ;;
  esac
  stamp "$stage" $(( $(date +%s) - t ))
done
bundle
