#!/usr/bin/env bash
# Issue 22's GPU sitting: one daemon runs every measurement in priority order, on one GPU, one at a
# time (no two jobs share the GPU, so timings are not disturbed), while the SmolLM2 slices arrive in
# other calls (bench/device_session.sh smollm2, which shares $ROOT with this script).
#
#   bash bench/device_session.sh setup           # carry .gpu/whl + .gpu/speed: wheels, transformers 4.57, DySCO snapshot
#   bash bench/i22_session.sh start              # daemon: the chain below; returns at once
#   bash bench/device_session.sh smollm2         # x3, one slice each (carry .gpu/smollm2/slices/{manifest.json,slice})
#   bash bench/i22_session.sh wait 400           # blocks until the chain is done (or 400 s), keeping the machine held
#   bash bench/i22_session.sh collect            # $OUT/i22.tgz: every step's JSON/JSONL and the logs
#   bash bench/i22_session.sh status             # what each step has done so far
#
# The chain (each step bounded by `timeout`; a step that fails or times out is logged and the next starts):
#   0 fused_tests  tests/test_fused_decode.py and test_fused_default.py on the GPU (the Triton kernels against the
#              matrix-product path; the engine takes them unasked)
#   1 decode   bench/dysco_decode.py: 32k, 16k (DECODE_LENGTHS), then 128k apart with 128 new tokens
#              (decode_128k.json; LONG_NEW_TOKENS): HF dynamic (a cold first call, warm-up
#              calls, then interleaved 1-token, N-token and clocked calls), hs_vanilla / hs_dysco / hs_onepass, HF dynamic without
#              cuDNN's SDPA, HF static + compile (up to 64k, last), floors; then the authors' DySCO and
#              transformers 4.57's generate in their own process (the budget left)
#   2 tokens   bench/gpu_tokens.py: SmolLM2 real weights, bf16 + float32, 1k-8k, and the parity against the
#              authors' code (waits up to TOKENS_WAIT s for the converted model; skipped if it never comes)
#   3 profile  bench/decode_profile.py: one decode step at 32k, vanilla and DySCO, per kernel category
#              (PROFILE=1 only: measured in the 2026-12-06 H100 sitting); profile_fused: the same with
#              the fused decode attention on (--fused)
#   4 capture  bench/dysco_decode.py --sections capture: 13B shape at 4k, 8B shape at 4k/32k/128k
#   5 batch    bench/dysco_decode.py --sections batch_auto: --batch-size auto vs 1, SmolLM2 shape, 4k
#   5b rows_cost  bench/attention_rows_cost.py --gpu: a capture's attention rows, both paths, 4k-128k
#   6 decode_128k_nocudnn  HF without cuDNN's SDPA at 128k (LONG_NO_CUDNN=0 leaves it out), last
#   4b capture_profile  bench/capture_profile.py --gpu: a capture's parts timed apart (8B shape, 4k and 128k;
#              CAPTURE_PROFILE_LENGTHS overrides)
# FUSED_TESTS names the test files of step 0 (a short sitting: tests/test_fused_default.py alone).
# TOKENS_DTYPES=float32 runs the token checks and the parity in float32 only (bf16 already measured).
# TOKENS_LENGTHS and PARITY_LENGTHS override the token checks' lengths. TOKENS_FIRST=1 runs the token
# checks first (a short sitting: exactness before speed). LONG_SECTIONS=decode and LONG_NEW_TOKENS shape
# the 128k step.
# SKIP="capture batch ..." leaves steps out (e.g. a second sitting on a card whose capture and batch
# tables are already measured: the decode table must come from one sitting, the others need not).
# CPU dry run: ROOT=/tmp/i22s DEVICE=cpu bash bench/i22_session.sh start (tiny sizes, no GPU).
set -u
MODE=${1:?usage: bench/i22_session.sh start|wait SECONDS|status|collect}
ROOT=${ROOT:-/root/hsgpu}
export HEADSCOPE_HOME=${HEADSCOPE_HOME:-$ROOT/hs}
PY=${PY:-python3}
export PY PYTHONPATH="$ROOT/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUTD=$ROOT/out/i22
LOGS=$ROOT/logs/i22
mkdir -p "$OUTD" "$LOGS"

chain() {
  local gpu="--gpu" ref=""
  [ "${DEVICE:-cuda}" = cpu ] && gpu="--quick"
  [ -d "$ROOT/dysco-ref" ] && ref="--reference-dysco $ROOT/dysco-ref --reference-path $ROOT/tf457"
  step() {  # step NAME SECONDS COMMAND...
    local name=$1 secs=$2; shift 2
    case " ${SKIP:-} " in *" $name "*) echo "$(date -u +%T) skip $name (SKIP)" >> "$LOGS/chain.log"; return 0 ;; esac
    echo "$(date -u +%T) start $name" >> "$LOGS/chain.log"
    local rc
    timeout "$secs" "$@" > "$LOGS/$name.log" 2>&1
    rc=$?  # before any command substitution, which would reset $? (the 2026-12-07 log said 0 for a cut step)
    echo "$(date -u +%T) end $name exit $rc$([ "$rc" = 124 ] && echo ' (time limit)')" >> "$LOGS/chain.log"
  }
  tokens_step() {  # waits up to TOKENS_WAIT s for the converted SmolLM2 (its slices come in other calls)
    for _ in $(seq "${TOKENS_WAIT:-90}"); do
      [ -f "$HEADSCOPE_HOME/models/smollm2-135m/config.json" ] && break; sleep 1
    done
    if [ -f "$HEADSCOPE_HOME/models/smollm2-135m/config.json" ]; then
      # shellcheck disable=SC2086
      # 2026-12-07: 150 s ended it in float32 at 8k, before the float32 parity
      step tokens 330 "$PY" bench/gpu_tokens.py --json "$OUTD/gpu_tokens.json" $ref --lengths "${TOKENS_LENGTHS:-1024,4096,8000}" \
        --dtypes "${TOKENS_DTYPES:-bfloat16,float32}" \
        --parity-lengths "${PARITY_LENGTHS:-2048:32,8000:8}" --parity-timeout 100 --parity-out "$OUTD"
    else
      echo "$(date -u +%T) skip tokens: no converted SmolLM2 in $HEADSCOPE_HOME" >> "$LOGS/chain.log"
    fi
  }
  if [ "$gpu" = --gpu ]; then
    # The fused kernels' exactness on this GPU first (real kernels, bf16 included; 34 s on the
    # 2026-12-07 H100): the decode columns below time them
    # shellcheck disable=SC2086
    step fused_tests 150 "$PY" -m pytest -q -p no:cacheprovider ${FUSED_TESTS:-tests/test_fused_decode.py tests/test_fused_default.py}
    # TOKENS_FIRST=1: the token checks before the decode steps (a short sitting: exactness first)
    [ "${TOKENS_FIRST:-0}" = 1 ] && tokens_step
    # The compiled column last: its first call compiles (28 s at 32k on the 2026-12-07 H100)
    # shellcheck disable=SC2086
    step decode 480 "$PY" bench/dysco_decode.py --gpu --sections decode,reference \
      --lengths ${DECODE_LENGTHS:-32768,16384} --whole-call-reps ${WHOLE_CALL_REPS:-5} \
      --columns hf_dynamic,hs_vanilla,hs_dysco,hs_onepass,hs_vanilla_fused,hs_dysco_fused,hs_onepass_fused,hf_dynamic_no_cudnn,hf_static_compiled \
      --hf-compiled-max-length 65536 --budget-s 420 $ref --out "$OUTD/decode.json"
    # 128k apart, with 128 new tokens: on 2026-12-07 whole calls there varied by 0.5-0.7 s a call
    # (prefill ~12 s), more than 32 tokens' worth of differences, and the self-check failed
    # shellcheck disable=SC2086
    # LONG_SECTIONS=decode leaves out the authors' process at 128k (a second sitting short of time)
    # (2026-12-08: HF rows now warm up until stable and interleave their calls: ~50 s more at 128k)
    step decode_128k 560 "$PY" bench/dysco_decode.py --gpu --sections "${LONG_SECTIONS:-decode,reference}" \
      --lengths 131072 --new-tokens "${LONG_NEW_TOKENS:-128}" --whole-call-reps "${LONG_WHOLE_CALL_REPS:-3}" \
      --columns hf_dynamic,hs_vanilla,hs_dysco,hs_onepass,hs_vanilla_fused,hs_dysco_fused,hs_onepass_fused --budget-s 500 $ref --out "$OUTD/decode_128k.json"
    [ "${TOKENS_FIRST:-0}" = 1 ] || tokens_step
    [ "${PROFILE:-0}" = 1 ] && step profile 90 "$PY" bench/decode_profile.py --gpu --out "$OUTD/decode_profile.json"
    # where the step's time goes with the Triton kernels on (the 2026-12-06 profile had them off;
    # bench/README.md's reading of what is left above the floor is an inference until this runs)
    step profile_fused 150 "$PY" bench/decode_profile.py --gpu --fused --out "$OUTD/decode_profile_fused.json"
    step capture 120 "$PY" bench/dysco_decode.py --gpu --sections capture --out "$OUTD/capture.json"
    # a capture's parts timed apart on the 8B shape (the CPU run only gives proportions)
    step capture_profile 240 "$PY" bench/capture_profile.py --gpu --lengths "${CAPTURE_PROFILE_LENGTHS:-4096,131072}" --reps 2 --warmups 1 \
      --json "$OUTD/capture_profile.json"
    step batch 60 "$PY" bench/dysco_decode.py --gpu --sections batch_auto --out "$OUTD/batch_auto.json"
    # a capture's rows, the two ways side by side (the per-head float32 copy was 0.47 s of a 128k pass)
    step rows_cost 120 "$PY" bench/attention_rows_cost.py --gpu --lengths 4096,32768,131072 --out "$OUTD/attention_rows_cost.json"
    # HF without cuDNN's SDPA at 128k too (HF's best at 16k on 2026-12-08): last, so that a sitting cut
    # short by the device budget (2026-12-08) loses only this step
    # shellcheck disable=SC2086
    [ "${LONG_NO_CUDNN:-1}" = 1 ] && step decode_128k_nocudnn 300 "$PY" bench/dysco_decode.py --gpu --sections decode \
      --lengths 131072 --new-tokens "${LONG_NEW_TOKENS:-128}" --whole-call-reps "${LONG_WHOLE_CALL_REPS:-3}" \
      --columns hf_dynamic_no_cudnn --hf-no-cudnn-max-length 131072 --budget-s 280 --out "$OUTD/decode_128k_nocudnn.json"
  else  # CPU dry run of the chain: every step at toy sizes
    step decode 900 "$PY" bench/dysco_decode.py --quick --sections decode --lengths 128 \
      --columns hf_dynamic,hf_static_compiled,hs_vanilla,hs_dysco,hs_onepass --out "$OUTD/decode.json"
    step tokens 900 "$PY" bench/gpu_tokens.py --cpu --dtypes float32 --lengths 200 --prompts 2 --new-tokens 4 \
      --json "$OUTD/gpu_tokens.json"
    step profile 900 "$PY" bench/decode_profile.py --length 128 --tokens 3,5 --out "$OUTD/decode_profile.json"
    step capture 900 "$PY" bench/dysco_decode.py --quick --sections capture --out "$OUTD/capture.json"
    step batch 600 "$PY" bench/dysco_decode.py --quick --sections batch_auto --out "$OUTD/batch_auto.json"
  fi
  echo "$(date -u +%T) chain done" >> "$LOGS/chain.log"
  touch "$LOGS/chain.done"
}

case $MODE in
start)
  # The chain runs from a copy of the repository taken now: a later call rewrites the tree.
  src=$ROOT/repo-i22
  rm -rf "$src" && mkdir -p "$src"
  tar --exclude=./.gpu --exclude=./.venv --exclude=./.git -cf - . | tar -xf - -C "$src"
  rm -f "$LOGS/chain.done" "$LOGS/chain.log"
  export -f chain
  export ROOT OUTD LOGS DEVICE="${DEVICE:-cuda}"
  setsid nohup bash -c "cd $src && chain" > "$LOGS/daemon.log" 2>&1 < /dev/null &
  echo $! > "$LOGS/chain.pid"
  echo "started the i22 chain (pid $!) from $src"
  ;;
wait)
  limit=${2:-400}
  for ((i = 0; i < limit; i += 5)); do
    [ -f "$LOGS/chain.done" ] && break
    sleep 5
  done
  cat "$LOGS/chain.log" 2>/dev/null
  ;;
status)
  cat "$LOGS/chain.log" 2>/dev/null
  for f in "$LOGS"/*.log; do
    [ -e "$f" ] || continue
    echo "== $(basename "$f")"; tail -3 "$f"
  done
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
  ;;
collect)
  # One archive (the device returns at most 8 files): every step's JSON and JSONL, and the logs
  dest=${OUT:-$ROOT}
  (cd "$ROOT" && tar czf "$dest/i22.tgz" logs/i22 out/i22 2>/dev/null)
  cat "$LOGS/chain.log" 2>/dev/null
  ls -la "$dest"
  ;;
*) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
