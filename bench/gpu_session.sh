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
#     Its share: KT_SHARE percent of the budget (default 22: ≈ 2 minutes of 9), leaving the rest to the sections below.
KT_BUDGET=$(( BUDGET_S * ${KT_SHARE:-22} / 100 - 30 ))
section kunin_test_loss $(( KT_BUDGET + 30 )) "$PY" examples/kunin_test_loss.py --size "$SIZE" --device "$DEVICE" \
  --budget "$KT_BUDGET" --out "$OUT/kunin_test_loss"

# --- Triton step (issue 13): correctness first. gpu: the interpreter-free kernel tests (fp32 vs PyTorch, precision modes
#     vs float64, auto-selection) and tests/dynamics/test_cuda.py (float32 there now runs kernel="triton" via "auto");
#     cpu: the whole Triton test file in the interpreter; tiny: one of its tests (seconds).
case "$SIZE" in
  gpu) TT=(tests/dynamics/test_triton_step.py tests/dynamics/test_cuda.py) ;;
  cpu) TT=(tests/dynamics/test_triton_step.py) ;;
  *) TT=(tests/dynamics/test_triton_step.py -k inactive) ;;
esac
section triton_tests 75 "$PY" -m pytest -q -p no:cacheprovider -p no:randomly "${TT[@]}"

# --- bench/gpu_fig1.py (≈ 3 minutes on an H100, estimated: not yet run on one): each precision mode's trajectory error vs float64 (10⁵ steps, 16 Fig. 1 members), then
#     loop / batched / torch.compile / fused / triton×{fp32,tf32,3xtf32} config-steps/s, TFLOP/s and % of the
#     GEMM peaks measured in the same run. Rows land in $OUT/gpu_fig1/{errors,rates}.jsonl as they are measured.
section gpu_fig1 200 "$PY" bench/gpu_fig1.py --device "$DEVICE" --size "$SIZE" --out "$OUT/gpu_fig1"

# --- The full-size reproductions on cuda (claims.json, figures, report under $OUT/<name>/), each with what is left;
#     cpu: their quick size; tiny: only that the CLI lists them (a typo in a name fails here, in seconds).
LR=("$PY" -c "import sys; from lazyrich.cli import main; sys.argv = ['lazyrich'] + sys.argv[1:]; main()")
#     spectral-width-scaling first: kunin-fig1 full trains float64 with kernel="fused" (≈ 13 min at the measured 11.5
#     TFLOP/s), more than this budget leaves; its section runs until the budget is spent.
for name in spectral-width-scaling kunin-fig1; do
  case "$SIZE" in
    gpu) section "reproduce_$name" 600 "${LR[@]}" reproduce "$name" --device cuda --out "$OUT/$name" ;;
    cpu) section "reproduce_$name" 600 "${LR[@]}" reproduce "$name" --quick --out "$OUT/$name" ;;
    *) section "reproduce_$name" 60 bash -c '"$@" reproduce --list | grep -q "^'"$name"' "' _ "${LR[@]}" ;;
  esac
done

echo "--- summary ($SIZE, $DEVICE, $(( $(date +%s) - START )) s of ${BUDGET_S} s)"
cat "$OUT/sessions.txt"
[ -s "$OUT/gpu_fig1.log" ] && sed -n '/, torch .*, size /,$p' "$OUT/gpu_fig1.log"
for name in spectral-width-scaling kunin-fig1; do
  [ -f "$OUT/reproduce_$name.log" ] && grep -E "claims passed" "$OUT/reproduce_$name.log" | tail -1 | sed "s/^/$name: /"
done
exit 0
