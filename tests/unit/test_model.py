"""The formal model of the job protocol (model/exportd.pml) verifies, and finds each bug put back into it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

MODEL = Path(__file__).resolve().parents[2] / "model" / "exportd.pml"


def verify(tmp_path: Path, *defines: str) -> str:
    """Run spin's exhaustive safety search on the model, built with `defines`; the verifier's report."""
    if shutil.which("spin") is None or shutil.which("cc") is None:
        if os.environ.get("CI"):
            raise AssertionError("spin and a C compiler are needed (.ci/run installs them)")
        pytest.skip("spin or cc is not installed (apt-get install spin gcc)")
    subprocess.run(["spin", *(f"-D{name}" for name in defines), "-a", str(MODEL)], cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    subprocess.run(["cc", "-w", "-O2", "-DSAFETY", "-DCOLLAPSE", "-o", "pan", "pan.c"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)
    return subprocess.run(["./pan", "-m10000", "-w20"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300).stdout


def errors_in(report: str) -> int:
    return int(re.search(r"errors: (\d+)", report).group(1))


def test_the_job_protocol_model_verifies_every_property_in_every_interleaving(tmp_path):
    report = verify(tmp_path)

    assert errors_in(report) == 0, report
    assert re.search(r"assertion violations\s+\+", report)  # the assertions were checked
    assert re.search(r"invalid end states\s+\+", report)  # and no process can get stuck
    assert int(re.search(r"(\d+) states, stored", report).group(1)) > 100_000  # the search did explore


@pytest.mark.parametrize(("mutation", "violated"), [
    ("NO_GUARD", "assertion violated (progress<=1)"),  # progress falls within an attempt
    ("NO_FENCE", "assertion violated (attempt==me)"),  # a stale attempt changes the job
    ("NO_RESET", "assertion violated  !(((status==1)&&(attempt==me)))"),  # a retry's first report is refused
    ("SHARED_FOLDER", "assertion violated  !(((status==2)&&(published==f)))"),  # the published ZIP is deleted
    ("EMIT_BEFORE_COMMIT", "assertion violated  !((completion_seen&&cancelled_at[emitted]))"),  # shown, then cancelled
])
def test_the_model_finds_a_counterexample_when_a_protection_is_removed(tmp_path, mutation, violated):
    report = verify(tmp_path, mutation)

    assert errors_in(report) >= 1, report
    assert violated in report, report
