"""Every bench runs in its quick mode, so a bench that rots fails CI (issue 31). Quick mode runs
each bench's code paths on small inputs in seconds; no target is judged. Each bench runs in
its own process, as a person would run it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backend_process import REPO_ROOT

BENCH = REPO_ROOT / "bench"
QUICK = ["protocol.py", "geometry.py", "vqvae.py", "llm.py", "blender_bridge.py", "quality.py", "edit_placement.py", "edit_kept.py",
         "edit_parts.py", "variations.py", "artist.py"]
# Benches without a quick mode yet, each with the reason; a new bench must join one of the lists.
NOT_YET: dict[str, str] = {
    "engines.py": "its --quick run (~2 min) passes from a shell (3 of 3), but run from this test its client "
                  "lost the vLLM backend (ConnectionError, no pong for 2.5 s) during the vLLM backend's first job "
                  "in 3 of 4 tries, not yet understood (flaky, so kept out of CI); tests/test_vllm_engine.py covers the same paths in CI",
}
# Benches whose quick run lives in a test of their own.
OWN_TEST = {"real_size.py": "tests/test_bench_real_size.py runs it at a tiny --scale"}
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "meshes"


def test_every_bench_is_covered():
    benches = {path.name for path in BENCH.glob("*.py")}
    assert benches == set(QUICK) | set(NOT_YET) | set(OWN_TEST), \
        "a bench is neither run in quick mode here nor listed in NOT_YET or OWN_TEST"


@pytest.mark.parametrize("name", QUICK)
def test_bench_runs_in_quick_mode(name):
    if name in ("geometry.py", "vqvae.py") and not FIXTURES.is_dir():
        pytest.skip(f"needs the shared mesh fixtures in {FIXTURES}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run([sys.executable, str(BENCH / name), "--quick"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{name} --quick failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert run.stdout.strip(), f"{name} --quick printed nothing"
