#!/usr/bin/env bash
# The one prepared device check (issue 18), sized for a 15-minute lease: run through `run` in
# ../.library/device with `bash benchmarks/gpu_check.sh`; everything lands in $OUT (JSON + logs).
# Steps are ordered by priority, each with its own time limit, so a slow one cannot starve the rest.
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv > "$OUT/smi.txt" 2>&1
{ lscpu; python3 -c "import torch, numba, numpy; print('torch', torch.__version__, 'numba', numba.__version__, 'numpy', numpy.__version__)"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/smi.txt"; grep -E "Model name|^CPU\(s\)|torch" "$OUT/machine.txt"
echo "== gpu tests"; timeout 120 python3 -m pytest -q -m gpu tests/policy/test_graphed.py 2>&1 | tail -4
echo "== vpt-2x"; timeout 180 python3 benchmarks/bench_gpu.py --device cuda --preset vpt-2x --batch 1 8 --steps 50 \
  --out "$OUT/gpu_vpt2x.json" 2>&1 | tail -16
echo "== crafter-small"; timeout 80 python3 benchmarks/bench_gpu.py --device cuda --preset crafter-small --batch 1 8 64 \
  --steps 50 --train-batch 64 --train-length 64 --out "$OUT/gpu_crafter.json" 2>&1 | tail -16
echo "== cpu vpt-1x"; AIMC_CACHE_DIR=/tmp/c1 timeout 120 python3 benchmarks/bench_vpt.py --threads 1 2 --batch 1 8 2>&1 \
  | tee "$OUT/cpu_vpt1x.txt" | tail -14
echo "== compile"; timeout 100 python3 benchmarks/bench_gpu.py --device cuda --preset vpt-2x --batch 1 --compile \
  --train-steps 0 --steps 50 --out "$OUT/gpu_compile.json" 2>&1 | tail -8
echo "== cpu vpt-1x capped at AVX2"; AIMC_CACHE_DIR=/tmp/c2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
  ATEN_CPU_CAPABILITY=avx2 NUMBA_CPU_NAME=haswell timeout 80 python3 benchmarks/bench_vpt.py --threads 1 2 --batch 1 8 \
  2>&1 | tee "$OUT/cpu_vpt1x_avx2.txt" | tail -14
