#!/usr/bin/env bash
# The GPU figures, in one go, on a machine with a CUDA GPU (about 3-5 minutes):
#   1. the CUDA tests (tests/test_loading.py, tests/test_gpu.py: the engine equals generate() on CUDA, runs moved
#      to the CPU and back between ZeroGPU calls give the same tokens);
#   2. the architecture matrix on CUDA (tests/test_architectures.py with PLAYGROUND_TEST_DEVICE=cuda);
#   3. `python -m playground bench --device cuda` (engine / generate(), compare, UI Step; felt speed with
#      --browser where playwright and chromium are installed);
#   4. the classroom on the GPU: `bench --classroom 30 --duration 30 --no-verify`, the app on cuda;
# then writes what it found into docs/bench.md, replacing the section between the "gpu-check" markers.
#
#   scripts/gpu_check.sh                 # needs .venv (make test sets it up) or $PYTHON with the requirements
#   BENCH_ARGS="--repeats 3" scripts/gpu_check.sh
#
# Exit status: 0 when every step passed, 1 when one failed (the section says which), 2 without CUDA.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
OUT=${GPU_CHECK_OUT:-bench-results/gpu-check}
mkdir -p "$OUT"

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: CUDA is not available here; nothing was measured." >&2
    exit 2
fi

status=0
started=$(date +%s)
echo "== 1/4 CUDA tests" >&2
"$PY" -m pytest tests/test_loading.py tests/test_gpu.py -k cuda -q -rs -p no:cacheprovider >"$OUT/cuda-tests.txt" 2>&1 \
    || status=1
tail -3 "$OUT/cuda-tests.txt" >&2
echo "== 2/4 architecture matrix on CUDA" >&2
PLAYGROUND_TEST_DEVICE=cuda "$PY" -m pytest tests/test_architectures.py -q -p no:cacheprovider >"$OUT/architectures.txt" 2>&1 \
    || status=1
tail -3 "$OUT/architectures.txt" >&2
echo "== 3/4 bench --device cuda" >&2
browser=""
if "$PY" -c "import playwright" 2>/dev/null && { [ -x "${PLAYGROUND_CHROMIUM:-/usr/bin/chromium}" ] || command -v chromium >/dev/null; }; then
    browser="--browser"
fi
# shellcheck disable=SC2086 - BENCH_ARGS is a list of flags
"$PY" -m playground bench --device cuda --repeats 5 $browser ${BENCH_ARGS:-} --out "$OUT/bench.json" \
    >"$OUT/bench.txt" 2>"$OUT/bench-progress.txt" || status=1
cat "$OUT/bench.txt" >&2
echo "== 4/4 the classroom, the app on cuda" >&2
"$PY" -m playground bench --classroom 30 --duration 30 --no-verify --server-env PLAYGROUND_DEVICE=cuda \
    --out "$OUT/classroom.json" >"$OUT/classroom.txt" 2>"$OUT/classroom-progress.txt" || status=1
cat "$OUT/classroom.txt" >&2
elapsed=$(( $(date +%s) - started ))

"$PY" - "$OUT" "$status" "$elapsed" "$browser" <<'EOF'
"""Write the GPU section of docs/bench.md from the files the three steps left."""
import re, sys, time
from pathlib import Path

import torch
import transformers

out, status, elapsed, browser = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def summary(name: str) -> str:
    text = (out / name).read_text(errors="replace") if (out / name).exists() else ""
    lines = [l for l in text.splitlines() if re.search(r"\b(passed|failed|error|skipped)\b", l)]
    return lines[-1].strip("= ") if lines else "did not run"


bench = (out / "bench.txt").read_text(errors="replace").strip() if (out / "bench.txt").exists() else ""
classroom = (out / "classroom.txt").read_text(errors="replace").strip() if (out / "classroom.txt").exists() else ""
gpu = torch.cuda.get_device_name(0)
section = f"""<!-- gpu-check:start (written by scripts/gpu_check.sh; edits here are replaced) -->
### Measured on a GPU

{time.strftime('%Y-%m-%d')}, {gpu} ({torch.cuda.device_count()} GPU(s)), torch {torch.__version__} (CUDA
{torch.version.cuda}), transformers {transformers.__version__}; `scripts/gpu_check.sh` took {elapsed} s and
{'passed every step' if status == '0' else 'FAILED a step (below)'}.

- CUDA tests (`tests/test_loading.py`, `tests/test_gpu.py`, `-k cuda`): {summary('cuda-tests.txt')}
- the architecture matrix on CUDA (`PLAYGROUND_TEST_DEVICE=cuda`, float32): {summary('architectures.txt')}
- `python -m playground bench --device cuda --repeats 5 {browser}`{'' if browser else ' (no browser here: felt speed not measured)'}:

```
{bench or 'the benchmark did not finish: see bench-progress.txt'}
```

- the classroom, the app on the GPU (`bench --classroom 30 --duration 30 --no-verify --server-env PLAYGROUND_DEVICE=cuda`):

```
{classroom or 'the classroom did not finish: see classroom-progress.txt'}
```
<!-- gpu-check:end -->"""
doc = Path("docs/bench.md")
text = doc.read_text()
pattern = re.compile(r"<!-- gpu-check:start.*?<!-- gpu-check:end -->", re.S)
if not pattern.search(text):
    sys.exit("docs/bench.md has no gpu-check markers")
doc.write_text(pattern.sub(lambda m: section, text))
print(f"docs/bench.md: GPU section written ({gpu})", file=sys.stderr)
EOF
exit $status
