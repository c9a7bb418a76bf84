"""Build the Lambda zip (python3.12, x86_64): dependencies + monitor/, checks/, recover/.

    python -m deploy.build [--out build/sentinel-lambda.zip] [--no-boto3] [--config FILE]
                           [--include certs/] [--no-pyc] [--verify]

Why each step is the way it is:

* **Dependencies for the Lambda, not for this machine**: ``pip install --platform
  manylinux2014_x86_64 --implementation cp --python-version 3.12 --only-binary=:all:``, so a
  3.11 build host still gets cp312 wheels (cryptography, pydantic-core, PyYAML are compiled).
  pure-sasl 0.6.2 and PyHive 0.7.0 publish no wheels at all: they are built locally first
  (pure Python, so the host's Python does not matter) into a wheelhouse pip then finds.
* **Cached**: the dependency tree is keyed by the requirements text and this recipe, under
  ``build/cache/deps-<key>``; rebuilding the zip after a code change takes seconds and needs
  no network. Written to a temporary dir and renamed, so two concurrent builds cannot leave
  half a tree behind.
* **.pyc for 3.12 only**: pip runs with ``--no-compile`` (it would write bytecode for the
  *host* Python), every ``__pycache__`` that came in is deleted, then Python 3.12 compiles
  everything with ``--invalidation-mode unchecked-hash`` (no mtime in the .pyc: deterministic,
  and the read-only /var/task is never stat-checked) and with ``/var/task`` as the recorded
  path (tracebacks show Lambda paths, not this machine's). Why ship .pyc at all: /var/task is
  read-only, so without them every cold start compiles every imported module again
  (deploy/README.md has the numbers). ``PYTHONHASHSEED=0`` because set constants are
  marshalled in hash order.
* **boto3 bundled by default**: the runtime's boto3 lags releases and changes under us;
  pinning ours makes the code we tested the code that runs. ``--no-boto3`` drops it (and
  botocore, s3transfer) for a much smaller zip when that matters more.
* **Only the service models the code uses**: botocore ships ~400 service models (most of the
  bundled boto3's size). The zip keeps those of the services the code may call, derived from
  what deploy/iam.py derives the IAM policy from (the declared actions' prefixes, plus every
  ``client("...")`` literal in the code), plus what botocore and credstash use on their own
  (:data:`SDK_SERVICES`): a new call is declared for IAM, or the IAM audit fails, so it cannot
  be forgotten here either. ``--all-service-models`` keeps everything.
* **Deterministic zip**: entries sorted, timestamps 1980-01-01, mode 0644, no directory
  entries, no host metadata: the same inputs give the same sha256, so a rebuild that changes
  nothing deploys nothing (CloudFormation compares the code hash).

Size: the build is one pipeline read top to bottom (Python 3.12, dependencies, our code,
service models, zip, import check), each section a step with its reasons above; no piece is
used without the others.
"""

# ruff: noqa: S603 - argv lists we build (pip, python3.12), never a shell or outside input

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "build"
DEFAULT_OUT = BUILD_DIR / "sentinel-lambda.zip"
CACHE_DIR = BUILD_DIR / "cache"

# Bump when the recipe changes what ends up in the dependency tree (invalidates caches).
RECIPE_VERSION = "2"
PLATFORM = "manylinux2014_x86_64"
PYTHON_VERSION = "3.12"
LAMBDA_TASK_ROOT = "/var/task"
# Published as sdists only: built into a local wheelhouse before the platform install.
SDIST_ONLY = ("pure-sasl==0.6.2", "pyhive==0.7.0")
PACKAGES = ("monitor", "checks", "recover")
# Not needed in the Lambda: the offline demo (needs moto) and build-host litter.
EXCLUDE = ("monitor/sandbox/*", "*/__pycache__/*", "*.pyc", "*.pyo", "*.so.dSYM/*", "*/.DS_Store")
# Dropped from the dependency tree: console scripts for a shell the Lambda does not have.
DEPS_DROP = ("bin",)
# Provided by the Lambda runtime; removed with --no-boto3.
# (jmespath stays: Powertools imports it and the zip must not depend on the runtime's copy.)
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
# Service models needed beyond what our code declares: STS (botocore's assume-role and
# web-identity credential providers), and credstash's own calls (DynamoDB, KMS).
SDK_SERVICES = ("sts", "dynamodb", "kms")
# Where the service models live in the dependency tree: <dir>/<service>/<api version>/*.
MODEL_DIRS = ("botocore/data", "boto3/data")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 6  # level 9: 3x the time for 0.4 % smaller (botocore's data is already gzipped)
FILE_MODE = 0o644
# Lambda limits (direct upload of the zip is 50 MB; unzipped code 250 MB).
MAX_ZIPPED = 50 * 1024 * 1024
MAX_UNZIPPED = 250 * 1024 * 1024

# Network-ish failures of pip: the build cannot fetch what is not cached (offline machine).
_OFFLINE_HINTS = ("No matching distribution", "Could not find a version", "NewConnectionError",
                  "Temporary failure in name resolution", "Network is unreachable", "Max retries exceeded")


class BuildError(Exception):
    """The zip could not be built; the message says which step and why."""


class DependencyDownloadError(BuildError):
    """pip could not fetch a dependency (offline and not cached): not a defect of the recipe."""


@dataclass(frozen=True)
class BuildOptions:
    out: Path = DEFAULT_OUT
    requirements: Path = ROOT / "requirements.txt"
    cache_dir: Path = CACHE_DIR
    source_root: Path = ROOT
    python312: str | None = None  # None: find_python312()
    bundle_boto3: bool = True
    compile_pyc: bool = True
    config: Path | None = None  # packaged as sentinel.yaml (SENTINEL_CONFIG=sentinel.yaml)
    include: tuple[Path, ...] = ()  # extra files/dirs (e.g. certs/), relative to the cwd, kept at that path
    all_service_models: bool = False  # keep every botocore service model (no pruning)


@dataclass
class BuildResult:
    zip_path: str
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    pyc_files: int
    deps_cached: bool
    seconds: float
    bundle_boto3: bool
    compile_pyc: bool
    versions: dict[str, str] = field(default_factory=dict)
    service_models: list[str] = field(default_factory=list)  # kept botocore models; empty: all

    def summary(self) -> str:
        mb = 1024 * 1024
        return (f"{self.zip_path}: {self.zipped_bytes / mb:.1f} MB zipped, {self.unzipped_bytes / mb:.1f} MB unzipped, "
                f"{self.files} files ({self.pyc_files} .pyc for 3.12), "
                f"boto3 {'bundled' if self.bundle_boto3 else 'from the runtime'}"
                f"{f' ({len(self.service_models)} service models)' if self.service_models else ''}, "
                f"deps {'cached' if self.deps_cached else 'installed'}, {self.seconds:.1f} s\n  sha256 {self.sha256}")


# ------------------------------------------------------------------ python 3.12


def find_python312() -> str:
    """``$SENTINEL_PYTHON312``, then pyenv's 3.12, then ``python3.12`` on PATH."""
    candidates = [os.environ.get("SENTINEL_PYTHON312", "")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True)
    candidates.append(shutil.which("python3.12") or "")
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    raise BuildError("no Python 3.12 found (set SENTINEL_PYTHON312): the .pyc must be compiled by the runtime's version")


def _check_python312(python: str) -> None:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=False)
    if out.stdout.strip() != PYTHON_VERSION:
        raise BuildError(f"{python} is Python {out.stdout.strip() or '?'}, not {PYTHON_VERSION}")


# ------------------------------------------------------------------ dependencies


def deps_key(opts: BuildOptions) -> str:
    h = hashlib.sha256()
    h.update(opts.requirements.read_bytes())
    h.update(json.dumps([RECIPE_VERSION, PLATFORM, PYTHON_VERSION, SDIST_ONLY, DEPS_DROP, opts.bundle_boto3,
                         opts.compile_pyc, RUNTIME_PROVIDED]).encode())
    return h.hexdigest()[:16]


def _run(cmd: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, env=dict(env) if env else None)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        cls = DependencyDownloadError if any(h in tail for h in _OFFLINE_HINTS) else BuildError
        raise cls(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def _wheelhouse(opts: BuildOptions) -> Path:
    """Wheels of the sdist-only packages, built once (they are pure Python)."""
    house = opts.cache_dir / "wheelhouse"
    names = [re.split(r"[=<>!]", spec)[0].replace("-", "_").lower() for spec in SDIST_ONLY]
    have = {p.name.split("-")[0].lower() for p in house.glob("*.whl")}
    if not all(n in have for n in names):
        house.mkdir(parents=True, exist_ok=True)
        _run([*_pip(), "wheel", "--quiet", "--no-deps", "--no-binary=:all:", *SDIST_ONLY, "-w", str(house)],
             "building wheels for " + ", ".join(SDIST_ONLY))
    return house


def _remove(paths: Iterable[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _strip_host_bytecode(tree: Path) -> None:
    _remove(sorted(tree.rglob("__pycache__")))
    _remove([*tree.rglob("*.pyc"), *tree.rglob("*.pyo")])


def compile_tree(tree: Path, python312: str, *, strict: bool) -> None:
    """Compile every .py under ``tree`` with 3.12, recorded as under /var/task (see module doc).

    Not ``-I``: that would also ignore PYTHONHASHSEED. The host's other PYTHON* variables are
    dropped instead. Not ``-j``: marshal output depends on what the compiling process did
    before (reference flags), so files spread over worker processes in a varying way come out
    different from build to build; one process walking the tree in sorted order is
    reproducible (and no slower here). ``strict``: any file that does not compile is an error (our code); the
    dependency tree may hold py2-only leftovers nobody imports (compileall then exits 1).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    proc = subprocess.run(
        [python312, "-s", "-W", "ignore", "-m", "compileall", "-q",
         "--invalidation-mode", "unchecked-hash", "-s", str(tree), "-p", LAMBDA_TASK_ROOT, str(tree)],
        capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0 and (strict or proc.returncode != 1):
        raise BuildError(f"compileall {tree} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr).strip()[-1500:]}")


def installed_versions(tree: Path) -> dict[str, str]:
    out = {}
    for d in sorted(tree.glob("*.dist-info")):
        name, _, version = d.name[: -len(".dist-info")].partition("-")
        out[name.lower().replace("_", "-")] = version
    return out


def build_deps(opts: BuildOptions, python312: str) -> tuple[Path, bool]:
    """The dependency tree for the zip (cached); returns (dir, was_cached)."""
    final = opts.cache_dir / f"deps-{deps_key(opts)}"
    if (final / ".complete").exists():
        return final, True
    opts.cache_dir.mkdir(parents=True, exist_ok=True)
    house = _wheelhouse(opts)
    tmp = Path(tempfile.mkdtemp(prefix=".deps-", dir=opts.cache_dir))
    try:
        target = tmp / "python"
        _run([*_pip(), "install", "--quiet", "--platform", PLATFORM, "--implementation", "cp",
              "--python-version", PYTHON_VERSION, "--only-binary=:all:", "--find-links", str(house),
              "--no-compile", "--no-warn-conflicts", "--target", str(target), "-r", str(opts.requirements)],
             "pip install for the Lambda platform")
        _remove(target / d for d in DEPS_DROP)
        if not opts.bundle_boto3:
            _remove(p for name in RUNTIME_PROVIDED for p in [target / name, *target.glob(f"{name}-*.dist-info")])
        _strip_host_bytecode(target)
        if opts.compile_pyc:
            compile_tree(target, python312, strict=False)
        (target / ".complete").write_text(json.dumps(installed_versions(target), indent=1, sort_keys=True))
        try:
            target.rename(final)
        except OSError:
            if not (final / ".complete").exists():  # not a concurrent build that won the race
                raise
        return final, False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ our code


def _excluded(rel: str) -> bool:
    return any(fnmatch.fnmatchcase(rel, pat) for pat in EXCLUDE)


def stage_sources(opts: BuildOptions, stage: Path, python312: str) -> None:
    """monitor/, checks/, recover/ (+ config, + includes) into ``stage``, compiled for 3.12."""
    root = opts.source_root
    for pkg in PACKAGES:
        for src in sorted((root / pkg).rglob("*")):
            rel = src.relative_to(root).as_posix()
            if src.is_file() and not _excluded(rel):
                dst = stage / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
    if opts.config is not None:
        _validate_config(opts.config)
        shutil.copyfile(opts.config, stage / "sentinel.yaml")
    for inc in opts.include:
        # Relative includes keep their path (tls.ca_file: certs/ca.pem resolves against /var/task).
        arc = Path(inc.name) if inc.is_absolute() or ".." in inc.parts else inc
        if inc.is_dir():
            shutil.copytree(inc, stage / arc, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif inc.is_file():
            (stage / arc).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(inc, stage / arc)
        else:
            raise BuildError(f"--include {inc}: no such file or directory")
    if opts.compile_pyc:
        compile_tree(stage, python312, strict=True)


def _validate_config(path: Path) -> None:
    """A config that fails validation would make every invocation report a config error."""
    from monitor.config import load_config
    from monitor.core.errors import ConfigError

    try:
        load_config(str(path))
    except ConfigError as exc:
        raise BuildError(f"--config {path}: invalid:\n  " + "\n  ".join(exc.errors)) from None


# ------------------------------------------------------------------ service models


def needed_services(root: Path = ROOT) -> frozenset[str]:
    """botocore service names the Lambda may create a client for: the services of every
    declared IAM action (deploy/iam.py), every ``client("...")`` literal in the code, and
    :data:`SDK_SERVICES`."""
    import ast

    from deploy import iam

    prefixes = {a.partition(":")[0] for a in iam.declared_actions()}
    services = {s for s in iam.known_services() if iam.IAM_PREFIX.get(s, s) in prefixes}
    services |= iam.client_services(ast.parse(p.read_text()) for p in iam.source_files(root))
    services |= set(SDK_SERVICES)
    return frozenset(services)


def prune_service_models(files: Mapping[str, Path], keep: Iterable[str]) -> dict[str, Path]:
    """``files`` without the service models of services not in ``keep`` (the top-level data
    files, endpoints.json, partitions.json..., stay)."""
    wanted = set(keep)
    out: dict[str, Path] = {}
    for name, path in files.items():
        for base in MODEL_DIRS:
            if name.startswith(base + "/"):
                parts = name[len(base) + 1:].split("/")
                if len(parts) > 1 and parts[0] not in wanted:
                    break
        else:
            out[name] = path
    return out


# ------------------------------------------------------------------ zip


def collect(roots: Sequence[Path]) -> dict[str, Path]:
    """Archive name → file, over several trees (later roots may not shadow earlier ones)."""
    files: dict[str, Path] = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_dir() or path.name == ".complete":
                continue
            rel = path.relative_to(root).as_posix()
            if rel in files:
                raise BuildError(f"{rel} is in both {files[rel]} and {path}")
            files[rel] = path
    return files


def write_zip(files: Mapping[str, Path], out: Path) -> str:
    """A deterministic zip of ``files``; returns its sha256."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever the host
            info.external_attr = (0o100000 | FILE_MODE) << 16
            zf.writestr(info, files[name].read_bytes(), compresslevel=ZIP_LEVEL)
    tmp.replace(out)
    return sha256_file(out)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def zip_sizes(path: Path) -> tuple[int, int, int, int]:
    """(zipped bytes, unzipped bytes, files, .pyc files)."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    return (path.stat().st_size, sum(i.file_size for i in infos), len(infos),
            sum(1 for i in infos if i.filename.endswith(".pyc")))


# ------------------------------------------------------------------ build


def build(opts: BuildOptions) -> BuildResult:
    started = time.monotonic()
    python312 = opts.python312 or find_python312()
    _check_python312(python312)
    deps, cached = build_deps(opts, python312)
    with tempfile.TemporaryDirectory(prefix="sentinel-stage-") as tmp:
        stage = Path(tmp)
        stage_sources(opts, stage, python312)
        files = collect([stage, deps])
        kept: list[str] = []
        if opts.bundle_boto3 and not opts.all_service_models:
            keep = needed_services(opts.source_root)
            files = prune_service_models(files, keep)
            kept = sorted({n.split("/")[2] for n in files if n.startswith("botocore/data/") and n.count("/") > 2})
            if missing := keep - set(kept):  # the bundled botocore lacks a service the code calls
                raise BuildError(f"botocore in the zip has no service model for {sorted(missing)}")
        sha = write_zip(files, opts.out)
    zipped, unzipped, count, pyc = zip_sizes(opts.out)
    if zipped > MAX_ZIPPED or unzipped > MAX_UNZIPPED:
        raise BuildError(f"{opts.out}: {zipped} bytes zipped / {unzipped} unzipped exceeds the Lambda limits")
    result = BuildResult(str(opts.out), sha, zipped, unzipped, count, pyc, cached, time.monotonic() - started,
                         opts.bundle_boto3, opts.compile_pyc, json.loads((deps / ".complete").read_text()), kept)
    manifest = {**asdict(result), "seconds": round(result.seconds, 2)}
    opts.out.with_suffix(".json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return result


@contextlib.contextmanager
def extracted(zip_path: Path) -> Iterator[Path]:
    """The zip unpacked into a temporary dir (what Lambda puts in /var/task)."""
    with tempfile.TemporaryDirectory(prefix="sentinel-task-") as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        yield Path(tmp)


def import_check(task_root: Path, python312: str, module: str = "monitor.handler",
                 runtime_paths: Sequence[Path] = ()) -> float:
    """Import ``module`` from ``task_root`` in a fresh, isolated 3.12 (no site-packages of
    ours, no PYTHONPATH); returns the import time in seconds. ``runtime_paths`` stand in for
    what the Lambda runtime adds after /var/task (its boto3, for a --no-boto3 zip)."""
    code = ("import sys, time; sys.path[:0] = sys.argv[1:]; t = time.perf_counter(); "
            f"import {module}; print(time.perf_counter() - t)")
    proc = subprocess.run([python312, "-I", "-c", code, str(task_root), *map(str, runtime_paths)],
                          capture_output=True, text=True, check=False, cwd=task_root)
    if proc.returncode != 0:
        raise BuildError(f"import {module} under {python312} failed:\n{proc.stderr.strip()[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def fake_runtime(into: Path) -> Path:
    """boto3/botocore/s3transfer of this venv (pure Python) linked into ``into``: stands in
    for the Lambda runtime's copies when checking a --no-boto3 zip."""
    import importlib.util

    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise BuildError(f"{name} is not installed here: cannot stand in for the runtime's")
        (into / name).symlink_to(Path(next(iter(spec.submodule_search_locations))))
    return into


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.build", description="Build the sentinel Lambda zip.")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    p.add_argument("--python312", help="Python 3.12 used to compile (default: pyenv/PATH)")
    p.add_argument("--no-boto3", action="store_true", help="use the runtime's boto3 (smaller zip)")
    p.add_argument("--no-pyc", action="store_true", help="ship sources only (slower cold start)")
    p.add_argument("--config", type=Path, help="package this config as sentinel.yaml (ConfigSource=file)")
    p.add_argument("--include", type=Path, action="append", default=[], help="extra file/dir (e.g. certs/)")
    p.add_argument("--verify", action="store_true", help="import monitor.handler from the zip under 3.12")
    p.add_argument("--all-service-models", action="store_true",
                   help="ship every botocore service model (default: only the services the code uses)")
    args = p.parse_args(argv)
    opts = BuildOptions(out=args.out, requirements=args.requirements, cache_dir=args.cache_dir,
                        python312=args.python312, bundle_boto3=not args.no_boto3, compile_pyc=not args.no_pyc,
                        config=args.config, include=tuple(args.include),
                        all_service_models=args.all_service_models)
    try:
        result = build(opts)
        print(result.summary())
        if args.verify:
            with extracted(opts.out) as task, tempfile.TemporaryDirectory() as runtime:
                seconds = import_check(task, opts.python312 or find_python312(),
                                       runtime_paths=[] if opts.bundle_boto3 else [fake_runtime(Path(runtime))])
            print(f"  import monitor.handler under 3.12 from the zip: ok ({seconds * 1000:.0f} ms)")
    except BuildError as exc:
        print(f"build: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
