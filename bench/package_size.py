"""Lambda package: size, and the cold import of the handler under Python 3.12 from the zip.

    python -m bench.package_size [--quick]

Why these numbers: Lambda downloads and unpacks the zip, then imports the handler, on every
cold start; boto3 is the floor any Python Lambda pays, so the handler/boto3 ratio says what
sentinel adds. Both imports run from the same extracted zip, interleaved, each in a fresh
``python3.12 -I -B`` (no venv, and -B because /var/task is read-only: nothing compiled at
import time is kept, exactly as in Lambda). Variants: boto3 bundled (the default), boto3 from
the runtime (size only: the stand-in runtime boto3 has no 3.12 .pyc, so timing it would be
unfair), and no .pyc at all (what skipping the 3.12 compile step would cost).
Results: bench/results/package.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, summary, table, write
from deploy import build

REPEAT = 9
MB = 1024 * 1024
VARIANTS: dict[str, dict[str, bool]] = {
    "bundled": {},
    "no-boto3": {"bundle_boto3": False},
    "no-pyc": {"compile_pyc": False},
    # Before issue 12: every botocore service model shipped (the default keeps the used ones).
    "all-models": {"all_service_models": True},
}


def import_seconds(python: str, task_root: Path, module: str) -> tuple[float, float]:
    """(import time inside the process, wall time of the whole process) in seconds."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); "
            f"import {module}; print(time.perf_counter() - t)")
    started = time.perf_counter()
    out = subprocess.run([python, "-I", "-B", "-c", code, str(task_root)], capture_output=True, text=True,
                         check=True, cwd=task_root).stdout
    return float(out.strip().splitlines()[-1]), time.perf_counter() - started


def measure(python: str, task_root: Path, modules: dict[str, str]) -> dict[str, dict[str, Any]]:
    for module in modules.values():
        import_seconds(python, task_root, module)  # warm the page cache
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in modules}
    for _ in range(REPEAT):
        for label, module in modules.items():
            samples[label].append(import_seconds(python, task_root, module))
    return {label: {"import_s": summary([s[0] for s in runs]), "process_s": summary([s[1] for s in runs])}
            for label, runs in samples.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="the default package only")
    args = p.parse_args(argv)
    python = build.find_python312()
    out_dir = ROOT / "build" / "bench"
    results: dict[str, Any] = {"python312": python, "variants": {}}
    rows = []
    for name, opts in VARIANTS.items():
        if args.quick and name != "bundled":
            continue
        out = build.DEFAULT_OUT if name == "bundled" else out_dir / f"sentinel-lambda-{name}.zip"
        res = build.build(build.BuildOptions(out=out, python312=python, bundle_boto3=opts.get("bundle_boto3", True),
                                             compile_pyc=opts.get("compile_pyc", True),
                                             all_service_models=opts.get("all_service_models", False)))
        entry: dict[str, Any] = {"zipped_mb": res.zipped_bytes / MB, "unzipped_mb": res.unzipped_bytes / MB,
                                 "files": res.files, "pyc_files": res.pyc_files, "sha256": res.sha256}
        if name not in ("no-boto3", "all-models"):
            with build.extracted(out) as task:
                modules = {"handler": "monitor.handler"}
                if name == "bundled":
                    modules = {"boto3": "boto3", **modules}
                entry["imports"] = measure(python, task, modules)
        results["variants"][name] = entry
        imports = entry.get("imports", {})
        rows.append([name, entry["zipped_mb"], entry["unzipped_mb"],
                     imports.get("handler", {}).get("import_s", {}).get("median", float("nan")) * 1000,
                     imports.get("boto3", {}).get("import_s", {}).get("median", float("nan")) * 1000])
    bundled = results["variants"]["bundled"]["imports"]
    ratio = bundled["handler"]["import_s"]["median"] / bundled["boto3"]["import_s"]["median"]
    results["ratio_handler_to_boto3"] = ratio
    print(table(rows, ["package (python 3.12)", "zipped MB", "unzipped MB", "import handler ms", "import boto3 ms"]))
    print(f"cold import ratio handler/boto3 (bundled, .pyc for 3.12): {ratio:.2f}  "
          f"(median of {REPEAT}, in-process import time; process wall incl. interpreter start: "
          f"{bundled['handler']['process_s']['median'] * 1000:.0f} ms vs "
          f"{bundled['boto3']['process_s']['median'] * 1000:.0f} ms)")
    path = write("package", results)
    print(f"-> {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
