"""Start-up cost: wall time of `cv --help` and `cv list` against `python -c "import torch"`, side by side.

    python benchmarks/startup.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "cv --help": [shutil.which("cv") or "cv", "--help"],
    "cv list": [shutil.which("cv") or "cv", "list"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, command in COMMANDS.items():
        wall(command)  # warm the file cache
    for _ in range(args.repeats):  # interleaved
        for name, command in COMMANDS.items():
            times[name].append(wall(command))
    torch_time = statistics.median(times["python -c 'import torch'"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<26} median {median:.3f}s  ({median / torch_time:.2f}x import torch)")


if __name__ == "__main__":
    main()
