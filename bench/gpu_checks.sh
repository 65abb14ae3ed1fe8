#!/usr/bin/env bash
# What we run on a lent GPU machine (no registry there: PYTHONPATH=src, missing wheels carried in .whl/).
# The one-call session script (every section under one 9-minute budget) is bench/gpu_session.sh; this is the older,
# longer sequence (cuda vs cpu sweep, quick reproductions on cuda, sweep_throughput).
#   correctness: tests/dynamics/test_cuda.py (GPU vs float64 CPU reference), a sweep on cuda vs cpu,
#   a reproduction's quick size on cuda; speed: bench/sweep_throughput.py --device cuda.
# Output lands in $OUT (device tool) or ./gpu_out.
set -u
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:src
else
  export PYTHONPATH=src
fi
export PYTHONUNBUFFERED=1
LR=(python3 -c "import sys; from lazyrich.cli import main; sys.argv = ['lazyrich'] + sys.argv[1:]; main()")
{ nvidia-smi -L; python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$OUT/env.txt"
if [ "${STAGE:-1}" = 2 ]; then  # every reproduction's quick size on cuda (and FULL="name ..." at full size)
  timeout 120 python3 -m pytest -q -p no:cacheprovider tests/dynamics/test_cuda.py 2>&1 | tail -5 | tee "$OUT/test_cuda.txt"
  names=$("${LR[@]}" reproduce --list | awk '/^[a-z]/{print $1}')
  for name in $names; do
    s0=$(date +%s.%N); timeout 90 "${LR[@]}" reproduce "$name" --quick --device cuda --out "/tmp/r_$name" > "/tmp/r_$name.log" 2>&1; rc=$?
    printf '%-22s quick rc=%d %6.1f s  %s\n' "$name" $rc "$(awk "BEGIN{print $(date +%s.%N) - $s0}")" "$(grep -E 'claims passed' /tmp/r_$name.log | tail -1)"
  done 2>&1 | tee "$OUT/repro_quick_cuda.txt"
  for name in ${FULL:-}; do
    s0=$(date +%s.%N); timeout ${FULL_LIMIT:-200} "${LR[@]}" reproduce "$name" --device cuda --out "/tmp/f_$name" > "/tmp/f_$name.log" 2>&1; rc=$?
    printf '%-22s full rc=%d %6.1f s  %s\n' "$name" $rc "$(awk "BEGIN{print $(date +%s.%N) - $s0}")" "$(grep -E 'claims passed' /tmp/f_$name.log | tail -1)"
  done 2>&1 | tee "$OUT/repro_full_cuda.txt"
  exit 0
fi
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/dynamics/test_cuda.py tests/dynamics/test_triton_step.py 2>&1 | tail -15 | tee "$OUT/test_cuda.txt"
for dev in cpu cuda; do
  TIMEFORMAT="sweep $dev %R s"; time "${LR[@]}" sweep examples/quick.yaml --store /tmp/q_$dev.duckdb --device $dev --quiet
  "${LR[@]}" runs export latest --format parquet --store /tmp/q_$dev.duckdb --out /tmp/q_$dev.parquet
done 2>&1 | tee "$OUT/sweep.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/sweep.txt"
import pandas as pd, numpy as np
a, b = (pd.read_parquet(f"/tmp/q_{d}.parquet") for d in ("cpu", "cuda"))
key = ["member", "step", "observable", "layer", "index"]
a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
assert a[key].equals(b[key]), "record keys differ"
rel = np.abs(a.value - b.value) / np.maximum(np.abs(a.value), 1e-12)
print(f"sweep cuda vs cpu: {len(a)} records, max rel diff {rel.max():.2e}")
PY
{ TIMEFORMAT="reproduce kunin-fig1 --quick cuda %R s"; time "${LR[@]}" reproduce kunin-fig1 --quick --device cuda --out /tmp/repro; } 2>&1 | tail -8 | tee "$OUT/repro.txt"
timeout ${BENCH_SECONDS:-300} python3 bench/sweep_throughput.py --device cuda 2>&1 | tee "$OUT/throughput.txt"
