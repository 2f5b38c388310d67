"""Two signals 1 ms apart at random moments (a scheduler's SIGTERM and a terminal's Ctrl-C to the
process group): one clean shutdown, whatever the moment. The command exits 128 + one of the
signals, prints one line that says what was kept, and leaves either no run folder (stopped before
the first checkpoint) or one whose summary.json says interrupted and whose checkpoint resumes;
never a status stuck at `running`, never a traceback. Random moments from a seeded generator
(printed on failure), spread over loading the command line, loading aihwkit, the first
evaluation and training."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import message_lines

CLI = Path(__file__).resolve().parents[1] / "cli.py"
TRIES = int(os.environ.get("HILT_SIGNAL_TRIES", "5"))


def two_signals(tmp_path: Path, device: str, delay: float, first: int, second: int):
    proc = subprocess.Popen([sys.executable, str(CLI), "train", "--device", device, "--epochs", "5000", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(delay)
    os.kill(proc.pid, first)
    time.sleep(0.001)
    os.killpg(proc.pid, second)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("device,longest", [("exact", 3.0), ("rram", 4.0)])
def test_two_signals_at_any_moment_end_in_one_clean_stop(tmp_path, device, longest):
    draw = random.Random(f"{device}-{time.time_ns()}")
    for k in range(TRIES):
        delay = draw.uniform(0.15, longest)
        first, second = draw.choice([(signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGINT), (signal.SIGINT, signal.SIGTERM)])
        out = tmp_path / str(k)
        code, err = two_signals(out, device, delay, first, second)
        where = f"try {k}: {device}, {first.name} then {second.name} after {delay:.3f} s"
        assert "Traceback" not in err, (where, err)
        lines = message_lines(err)
        assert len(lines) == 1 and lines[0].startswith("interrupted:"), (where, err)
        # Python runs the handlers of signals that came during one C call by number, not by arrival
        assert code in (128 + first, 128 + second), (where, code, err)
        runs = list(out.iterdir()) if out.exists() else []
        if not runs:
            assert "kept in" not in lines[0], (where, err)
            continue
        (run,) = runs
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "interrupted", (where, summary)
        assert (run / "checkpoint.npz").is_file(), where
        assert f"{summary['epochs']} of 5000 epochs kept in {run}" in lines[0] and "--resume" in lines[0], (where, err)
