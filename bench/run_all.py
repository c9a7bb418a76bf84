"""`make bench`: every benchmark in one run; each prints its table and writes bench/results/*.json."""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    ["bench.cold_import"],
    ["bench.scale_tick"],
    ["bench.incident"],
    ["bench.fanout"],           # 1000 targets through moto SQS (a few minutes)
    ["bench.cost"],             # from bench.fanout's results
    ["bench.ladder"],
    ["bench.hs2_latency"],      # needs pyspark + Java (make install-integration)
    ["bench.package_size"],     # needs the Lambda zip (deploy/build.py)
]


def main() -> int:
    failed = []
    for bench in BENCHES:
        print(f"\n## {bench[0]}", flush=True)
        if subprocess.run([sys.executable, "-m", *bench], check=False).returncode != 0:
            failed.append(bench[0])
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
