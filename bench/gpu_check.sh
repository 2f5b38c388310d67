#!/usr/bin/env bash
# The GPU acceptance run, for a machine with a CUDA GPU (never part of CI):
#
#   bash bench/gpu_check.sh [OUT.json]        (default results/gpu_check.json)
#
# 1. installs CuPy for the CUDA version nvidia-smi reports, into the project's .venv (made by
#    `bash .ci/run` or the README's commands first);
# 2. runs bench/gpu_parity.py: every built-in rule's steps on CuPy against NumPy, on an MLP and
#    a conv net (the test suite itself runs on NumPy only);
# 3. times a VGG16 step on CIFAR-10-shaped data (batch 128) with bp and with dp_adjoint (the
#    recipe's fw schedule) against PyTorch cuDNN, and the CIFAR-10 epoch (391 steps) it implies;
# 4. runs bench/gpu_count_pulses.py when aihwkit's CUDA build is importable;
# and writes one JSON with every result. Each part has its own time limit; the whole stays under
# 10 minutes (the limits add up to 590 s). A part that fails is recorded as failed, the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/gpu_check.json}
PY=.venv/bin/python
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cuda=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: \([0-9]*\)\..*/\1/p' | head -1)
if [ -z "$cuda" ]; then echo "gpu_check: no CUDA GPU (nvidia-smi found none)" >&2; exit 2; fi
$PY -m pip --version >/dev/null 2>&1 || $PY -m ensurepip -q
timeout 180 $PY -m pip install -q "cupy-cuda${cuda}x" >"$WORK/install.log" 2>&1
echo $? >"$WORK/install.rc"

timeout 150 $PY bench/gpu_parity.py --json "$WORK/parity.json" >"$WORK/parity.log" 2>&1
echo $? >"$WORK/parity.rc"

for rule in bp dp_adjoint; do
  extra=""
  [ "$rule" = dp_adjoint ] && extra="--schedule fw"
  HILT_XP=cupy timeout 100 $PY cli.py bench --vgg vgg16 --image-size 32 --batch-size 128 --steps 20 \
    --rule "$rule" $extra --json >"$WORK/vgg-$rule.json" 2>"$WORK/vgg-$rule.log"
  echo $? >"$WORK/vgg-$rule.rc"
done

if $PY -c "from aihwkit.simulator.rpu_base import cuda; assert cuda.is_compiled()" 2>/dev/null; then
  timeout 60 $PY bench/gpu_count_pulses.py >"$WORK/pulses.log" 2>&1
  echo $? >"$WORK/pulses.rc"
else
  echo "aihwkit was built without CUDA here" >"$WORK/pulses.log"
  echo skipped >"$WORK/pulses.rc"
fi

$PY - "$WORK" "$OUT" "$cuda" <<'EOF'
import json, sys
from pathlib import Path

work, out, cuda = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
tail = lambda name: (work / name).read_text(errors="replace")[-2000:] if (work / name).exists() else ""
rc = lambda name: (work / f"{name}.rc").read_text().strip() if (work / f"{name}.rc").exists() else "not run"
result = {"cuda": cuda, "cupy_install": {"rc": rc("install"), "log": tail("install.log")},
          "cupy_parity": {"rc": rc("parity"), "log": tail("parity.log")},
          "aihwkit_pulse_counts": {"rc": rc("pulses"), "log": tail("pulses.log")}}
if (work / "parity.json").exists():
    result["cupy_parity"]["cases"] = json.loads((work / "parity.json").read_text())["cases"]
for rule in ("bp", "dp_adjoint"):
    entry = {"rc": rc(f"vgg-{rule}"), "log": tail(f"vgg-{rule}.log")}
    try:
        (row,) = json.loads((work / f"vgg-{rule}.json").read_text())
        entry.update(row, cifar10_epoch_s_hilt=row["hilt_ms"] * 391 / 1e3, cifar10_epoch_s_torch=row["reference_ms"] * 391 / 1e3)
    except Exception as err:  # recorded, not raised: the other parts still count
        entry["error"] = f"{type(err).__name__}: {err}"
    result[f"vgg16_{rule}"] = entry
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(result, indent=2))
print(json.dumps({k: v.get("rc") if isinstance(v, dict) else v for k, v in result.items()}))
EOF
