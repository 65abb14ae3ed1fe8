#!/usr/bin/env bash
# One GPU session: every prepared GPU check, in sections, under one budget (default 540 s = 9 minutes),
# each writing under $OUT/<section>/ with its log in $OUT/<section>.log and one line in $OUT/sessions.txt.
#   OUT=... bench/gpu_session.sh                 # full size on cuda (a lent GPU machine; see bench/gpu_checks.sh)
#   OUT=... bench/gpu_session.sh --size cpu      # the CPU-size equivalents on this machine (minutes to tens of minutes)
#   OUT=... bench/gpu_session.sh --size tiny     # seconds: checks every section end to end (tests run this)
# Add a check as one `section NAME SECONDS command...` line; a section gets min(SECONDS, time left).
set -u
SIZE=gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=${2:-}; shift 2 || shift ;;
    *) echo "gpu_session.sh: unknown option '$1': use --size gpu|cpu|tiny" >&2; exit 2 ;;
  esac
done
case "$SIZE" in gpu) DEVICE=cuda ;; cpu|tiny) DEVICE=cpu ;; *) echo "gpu_session.sh: --size '$SIZE' must be gpu, cpu or tiny" >&2; exit 2 ;; esac
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-540}
START=$(date +%s)
if [ "$DEVICE" = cuda ] && ls .whl/*.whl >/dev/null 2>&1; then  # no registry on the GPU machine: wheels carried in .whl/
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:src
else
  export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

section() {  # section NAME SECONDS command...: run under min(SECONDS, budget left), log and one summary line
  local name=$1 limit=$2; shift 2
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if [ "$left" -le 10 ]; then echo "$name: skipped (budget spent)" | tee -a "$OUT/sessions.txt"; return; fi
  [ "$limit" -lt "$left" ] || limit=$left
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc $(( $(date +%s) - t0 )) s (limit $limit s, size $SIZE, device $DEVICE)" | tee -a "$OUT/sessions.txt"
}

[ "$DEVICE" = cuda ] && { nvidia-smi -L; "$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; } > "$OUT/env.txt" 2>&1

# --- Kunin Fig. 1b test loss (issue 23): best τ×δ cell with seed intervals at every checkpoint, d = 20, 50, 100.
#     gpu: the paper's 9 smallest τ (0.1–0.45) × its 17 δ × 16 seeds, 10⁴ steps (d = 100: 3·10⁴); --budget stops new seeds in time
#     to summarise the seeds done. Docs: docs/reproductions.md (kunin-fig1, test loss).
KT_BUDGET=$(( BUDGET_S * 5 / 6 - 30 ))
section kunin_test_loss $(( KT_BUDGET + 30 )) "$PY" examples/kunin_test_loss.py --size "$SIZE" --device "$DEVICE" \
  --budget "$KT_BUDGET" --out "$OUT/kunin_test_loss"
