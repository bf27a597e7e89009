"""The benchmark scripts, whose figures the README quotes, still import and parse their options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# Runs each script as `python SCRIPT --help` would, in one interpreter (torch imported once), with
# the benchmarks folder on the path, as running a script from it puts it there.
HELP_OF_EACH = """
import runpy, sys
sys.path.insert(0, sys.argv[1])
for script in sys.argv[2:]:
    sys.argv = [script, "--help"]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    else:
        raise AssertionError(f"{script} ran instead of printing its help")
"""


def test_every_benchmark_script_imports_and_prints_its_options():
    scripts = sorted(BENCHMARKS.glob("*.py"))
    assert len(scripts) >= 7
    result = subprocess.run([sys.executable, "-c", HELP_OF_EACH, str(BENCHMARKS), *map(str, scripts)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for script in scripts:
        assert f"usage: {script.name}" in result.stdout
