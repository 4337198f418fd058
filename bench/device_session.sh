#!/usr/bin/env bash
# One sitting on the device tool's GPU machine: the decode bench, the SmolLM2 pass-key format study
# and the Qwen2.5-Coder study, run as background jobs while the models arrive in slices.
#
# Why this shape. A device call carries at most 64 MiB (the working tree included), the machine
# stays warm only 30 s between calls, and device time is counted while it is held. So the first
# call installs the wheels and starts the decode bench (random weights: nothing to carry), the next
# calls each carry one model slice (bench/qwen_slices.py) and return at once, and the long jobs run
# meanwhile as daemons (`setsid`: they outlive the call that started them). Everything a job writes
# goes under $ROOT, outside the repository copy, which every call refreshes.
#
#   bash bench/device_session.sh setup                 # carry .gpu/whl (+ .gpu/speed/ref-whl, .gpu/speed/dysco)
#   bash bench/device_session.sh bench [GPU]           # daemon: bench/dysco_decode.py --gpu on GPU (0)
#   bash bench/device_session.sh smollm2               # carry .gpu/smollm2/slices/{manifest.json,<slice>}; converts when complete
#   bash bench/device_session.sh format GPUS SHARDS    # daemon: bench/passkey_format_study_gpu.sh on GPUS ("1")
#   bash bench/device_session.sh stop NAME             # kill a daemon's process group (bench, format)
#   bash bench/device_session.sh status                # what each job has done so far
#   bash bench/device_session.sh collect               # $OUT/session.tgz: every job's results and logs
#
# The Qwen study has its own script (bench/qwen_study_gpu.sh stash|run), which keeps its files
# under /root/qwen-gpu. CPU dry run of this script: ROOT=/tmp/ds DEVICE=cpu bash bench/device_session.sh ...
set -u
MODE=${1:?usage: bench/device_session.sh setup|bench|smollm2|format|status|collect}
ROOT=${ROOT:-/root/hsgpu}
export HEADSCOPE_HOME=${HEADSCOPE_HOME:-$ROOT/hs}
export PYTHONPATH="$ROOT/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$ROOT/logs" "$ROOT/out"

# Jobs run from a copy of the repository taken when they start: a later call rewrites the tree.
snapshot() {
  local dest=$ROOT/repo-$1
  rm -rf "$dest" && mkdir -p "$dest"
  tar --exclude=./.gpu --exclude=./.venv --exclude=./.git -cf - . | tar -xf - -C "$dest"
  echo "$dest"
}

daemon() {  # daemon NAME COMMAND...: run in its own session, log to $ROOT/logs/NAME.log
  local name=$1; shift
  setsid nohup bash -c "$*; echo \"exit \$?\" >> $ROOT/logs/$name.done" > "$ROOT/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$ROOT/logs/$name.pid"
  echo "started $name (pid $!)"
}

case $MODE in
setup)
  # Each folder is installed when carried: .gpu/whl and .gpu/speed together pass a call's 64 MiB with
  # the repository, so they can come in two calls
  if [ -d .gpu/whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$ROOT/site" \
      .gpu/whl/*.whl || exit 1
  fi
  if [ -d .gpu/speed/ref-whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$ROOT/tf457" \
      .gpu/speed/ref-whl/*.whl || exit 1
    rm -rf "$ROOT/dysco-ref" && cp -r .gpu/speed/dysco "$ROOT/dysco-ref"
  fi
  python3 -c "import torch, transformers, nnsight, zarr, dask, gguf; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'GPUs', torch.cuda.device_count())"
  nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader 2>/dev/null
  ;;
bench)
  gpu=${2:-0}
  src=$(snapshot bench)
  ref=""
  [ -d "$ROOT/dysco-ref" ] && ref="--reference-dysco $ROOT/dysco-ref --reference-path $ROOT/tf457"
  # BENCH_NAME / BENCH_ARGS: a second run (e.g. --lengths 131072) writes its own file.
  daemon "${BENCH_NAME:-bench}" "cd $src && CUDA_VISIBLE_DEVICES=$gpu python3 bench/dysco_decode.py --gpu \
    --out $ROOT/out/${BENCH_NAME:-dysco_decode}.json --budget-s ${BUDGET:-420} $ref ${BENCH_ARGS:-}"
  ;;
smollm2)
  have=$(python3 bench/qwen_slices.py stash .gpu/smollm2/slices "$ROOT/smollm2-slices") || exit 1
  echo "$have"
  case $have in *missing*) exit 0 ;; esac   # more slices to come
  if [ ! -f "$HEADSCOPE_HOME/models/smollm2-135m/config.json" ]; then
    gguf=$ROOT/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    python3 bench/qwen_slices.py assemble "$ROOT/smollm2-slices" "$gguf" || exit 1
    # The alias reads the converted copy in the cache, as `make setup` leaves it (no PyPI package needed).
    python3 -c "import sys; from headscope.models import ALIASES, convert_gguf, cache_dir; a = ALIASES['smollm2-135m']; \
print(convert_gguf(sys.argv[1], cache_dir() / 'models' / a.name, provenance={'alias': a.name, 'hf_id': a.hf_id}))" "$gguf" \
      2>&1 | tail -1
  fi
  python3 -c "from headscope.models import load_tokenizer; print('smollm2 ready:', load_tokenizer('smollm2-135m').eos_token)"
  ;;
format)
  gpus=${2:-1}; shards=${3:-4}
  src=$(snapshot format)
  daemon format "cd $src && CUDA_VISIBLE_DEVICES=$gpus DEVICE=${DEVICE:-cuda} BATCH=${BATCH:-32} \
    bash bench/passkey_format_study_gpu.sh $ROOT/format $shards ${FORMAT_SECONDS:-1500}"
  ;;
stop)
  # A daemon is its own session (setsid, whose pid is the session id); `timeout` puts children in
  # their own process groups, so the whole session goes.
  sid=$(cat "$ROOT/logs/${2:?stop NAME}.pid" 2>/dev/null) || { echo "no daemon $2"; exit 0; }
  [ "$sid" = "$(ps -o sid= -p $$ | tr -d ' ')" ] && { echo "refusing to stop this shell's own session"; exit 1; }
  pkill -s "$sid" && echo "stopped $2 (session $sid)"; sleep 3
  pgrep -fa "headscope ablate|dysco_decode.py" | head -5
  ;;
status)
  for f in "$ROOT"/logs/*.log; do
    [ -e "$f" ] || continue
    echo "== $(basename "$f") $(cat "${f%.log}.done" 2>/dev/null)"; tail -4 "$f"
  done
  [ -d "$ROOT/format" ] && echo "format results: $(cat "$ROOT"/format/results*.jsonl 2>/dev/null | wc -l)"
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
  ;;
collect)
  (cd "$ROOT" && tar czf "${OUT:-$ROOT}/session.tgz" out logs format/results*.jsonl format/logs 2>/dev/null)
  ls -la "${OUT:-$ROOT}"
  ;;
*) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
