"""Handler cold import vs ``import boto3`` in the same run (fresh interpreter each time).

The Lambda pays this on every cold start; boto3 is the floor any AWS Lambda in Python pays,
so the ratio says what sentinel adds on top. Interleaved runs so drift hits both equally.
"""

from __future__ import annotations

import sys

from bench.common import run_python, summary, table, write

REPEAT = 9


def main() -> int:
    baseline, handler = [], []
    run_python("import boto3")  # warm the page cache
    for _ in range(REPEAT):
        baseline.append(run_python("import boto3"))
        handler.append(run_python("import monitor.handler"))
    b, h = summary(baseline), summary(handler)
    ratio = h["median"] / b["median"]
    print(table([["import boto3 (baseline)", b["median"] * 1000, b["p95"] * 1000],
                 ["import monitor.handler", h["median"] * 1000, h["p95"] * 1000]],
                ["what (python " + sys.version.split()[0] + ")", "median ms", "p95 ms"]))
    print(f"ratio handler/boto3: {ratio:.2f}")
    lazy = run_python("import sys, monitor.handler; assert 'pyhive' not in sys.modules and 'thrift' not in sys.modules")
    print(f"pyhive/thrift not imported by the handler at cold start: ok ({lazy * 1000:.0f} ms)")
    write("cold_import", {"baseline_boto3_s": b, "handler_s": h, "ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
