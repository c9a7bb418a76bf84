"""Issue 20 item 5: the docs a newcomer reads are tested.

- Every ```yaml block in README.md and docs/*.md that is a whole config (``version:`` and
  ``targets:``) validates with ``parse_config``. A fragment is wrapped into a minimal config
  (top-level keys merged into it, target keys into its target, ``recovery`` keys into its
  recovery, a check into its checks) and validated; one that cannot be wrapped must say
  ``# fragment`` in a comment.
- Every ``sentinel ...`` line in a ```bash / ```sh / ```console / ```shell block parses with
  the CLI's own parser (an unknown subcommand or flag fails here), and is either run offline
  (``validate``, ``schema``, ``--help``; ``sandbox`` in a subprocess) and must exit 0, or
  ends with a ``# needs AWS`` comment.
- The reference part of docs/configuration.md is what ``monitor.schema`` generates; the
  operations runbook names every page kind the code sends; README stays the first five
  minutes (≤ 250 lines) and keeps ``make test``, the command .ci/run and CI rely on.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import build_parser, main
from monitor.config import Config, ConfigError, Recovery, Target, parse_config
from monitor.schema import CONFIG_DOC, reference_markdown, with_reference

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "console", "shell"}
NEEDS_AWS = re.compile(r"#\s*needs AWS\b")
OFFLINE = {"validate", "schema"}

MINIMAL: dict[str, Any] = {
    "version": 1,
    "region": "us-east-1",
    "state_table": "sentinel-state",
    "notify": {"page_topic_arn": "arn:aws:sns:us-east-1:123456789012:sentinel-pages"},
    "targets": [{
        "name": "prod-hive",
        "cluster": {"name": "RC.HIVE.ADHOC"},
        "checks": [{"type": "hiveserver2", "name": "hive-via-elb", "host": "hive.internal.example.com", "port": 443,
                    "credentials": {"provider": "env", "username": "rcapp", "key": "HIVE_PW"}}],
    }],
}


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


FENCE = re.compile(r"^```(\S*)\s*$")


def blocks(doc: Path) -> list[Block]:
    out: list[Block] = []
    lang: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if lang is None and m:
            lang, start, body = m.group(1).lower(), number, []
        elif lang is not None and line.startswith("```"):
            out.append(Block(doc, start, lang, "\n".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"{doc}: unclosed code fence at line {start}"
    return out


def all_blocks(*langs: str) -> list[Block]:
    return [b for doc in DOCS for b in blocks(doc) if b.lang in langs]


# ---------------------------------------------------------------- YAML config blocks

def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def wrap(fragment: dict[str, Any]) -> dict[str, Any] | None:
    """A minimal config that contains ``fragment`` where its keys belong, or None."""
    keys = set(fragment)
    raw = copy.deepcopy(MINIMAL)
    target = raw["targets"][0]
    if keys <= set(Config.model_fields):
        return _merge(raw, fragment)
    if keys <= set(Target.model_fields):
        raw["targets"][0] = _merge(target, fragment)
        return raw
    if keys <= set(Recovery.model_fields):
        target["recovery"] = fragment
        return raw
    if "type" in keys and "name" in keys:
        target["checks"].append(fragment)
        return raw
    return None


def yaml_cases() -> list[Block]:
    return all_blocks("yaml", "yml")


def test_the_docs_show_yaml() -> None:
    whole = [b for b in yaml_cases() if re.search(r"^version:", b.text, re.M) and re.search(r"^targets:", b.text, re.M)]
    assert any(b.doc.name == "README.md" for b in whole), "README shows no whole config"
    assert any(b.doc.name == "configuration.md" for b in whole)


@pytest.mark.parametrize("block", yaml_cases(), ids=lambda b: b.where)
def test_every_yaml_block_is_a_valid_config_or_fragment(block: Block) -> None:
    raw = yaml.safe_load(block.text)
    if re.search(r"^version:", block.text, re.M) and re.search(r"^targets:", block.text, re.M):
        try:
            parse_config(raw)
        except ConfigError as exc:
            pytest.fail(f"{block.where}: a whole config that does not validate: {exc.errors}")
        return
    wrapped = wrap(raw) if isinstance(raw, dict) else None
    if wrapped is None:
        assert re.search(r"#\s*fragment\b", block.text), (
            f"{block.where}: a YAML block that is neither a whole config nor a fragment that can be wrapped into "
            "one; mark it with a '# fragment' comment")
        return
    try:
        parse_config(wrapped)
    except ConfigError as exc:
        pytest.fail(f"{block.where}: the fragment does not validate inside a minimal config: {exc.errors}")


def test_a_wrong_fragment_is_caught() -> None:
    with pytest.raises(ConfigError):
        parse_config(wrap({"recovery": {"ladder": [{"rung": "replace"}, {"rung": "restart_service"}]}}) or {})
    with pytest.raises(ConfigError):
        parse_config(wrap({"notify": {"page_topic_arn": "not-an-arn"}}) or {})
    assert wrap({"something": 1}) is None


# ---------------------------------------------------------------- sentinel command lines

@dataclass(frozen=True)
class Command:
    block: Block
    text: str
    argv: list[str]
    needs_aws: bool


def commands_in(block: Block) -> list[Command]:
    out: list[Command] = []
    for line in block.text.splitlines():
        stripped = line.strip()
        if block.lang == "console":
            if not stripped.startswith("$ "):
                continue  # output
            stripped = stripped[2:].strip()
        if not stripped.startswith("sentinel ") and stripped != "sentinel":
            continue
        words = shlex.split(stripped, comments=True)
        argv = [w for w in words[1:] if not w.startswith((">", "|"))]
        if ">" in words:
            argv = words[1:words.index(">")]
        out.append(Command(block, stripped, argv, bool(NEEDS_AWS.search(stripped))))
    return out


def shell_commands() -> list[Command]:
    return [c for b in all_blocks(*SHELL) for c in commands_in(b)]


def test_the_docs_show_commands() -> None:
    cmds = shell_commands()
    assert any(c.block.doc.name == "README.md" for c in cmds)
    assert any(c.needs_aws for c in cmds) and any(not c.needs_aws for c in cmds)


@pytest.mark.parametrize("cmd", shell_commands(), ids=lambda c: f"{c.block.where}:{c.text[:60]}")
def test_every_sentinel_command_parses_and_runs_offline_or_is_marked(cmd: Command,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    try:
        args = parser.parse_args(cmd.argv)
    except SystemExit as exc:
        if exc.code == 0 and "--help" in cmd.argv or "-h" in cmd.argv:
            return  # --help: argparse printed it and exits 0
        pytest.fail(f"{cmd.block.where}: `{cmd.text}` is not a valid sentinel command line "
                    f"(argparse: {capsys.readouterr().err.strip()})")
    if cmd.needs_aws:
        return
    if args.command == "sandbox":
        proc = subprocess.run([sys.executable, "-m", "monitor.cli", *cmd.argv], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"{cmd.block.where}: `{cmd.text}` exited {proc.returncode}: {proc.stderr[-2000:]}"
        return
    assert args.command in OFFLINE, (
        f"{cmd.block.where}: `{cmd.text}` needs AWS (only {sorted(OFFLINE)}, sandbox and --help run offline); "
        "end the line with '# needs AWS'")
    config = getattr(args, "config", None)
    if config is not None:
        assert (ROOT / config).is_file(), f"{cmd.block.where}: `{cmd.text}`: no file {config} in the repository"
    code = main(_in_root(cmd.argv))
    assert code == 0, f"{cmd.block.where}: `{cmd.text}` exited {code}: {capsys.readouterr().err}"


def _in_root(argv: list[str]) -> list[str]:
    """Config paths in the docs are relative to the repository root."""
    out = list(argv)
    for i, word in enumerate(out[:-1]):
        if word in ("-c", "--config") and not Path(out[i + 1]).is_absolute():
            out[i + 1] = str(ROOT / out[i + 1])
    return out


@pytest.mark.parametrize("line", ["sentinel frobnicate", "sentinel check --target t --nagois",
                                  "sentinel tick --dry-run --target"])
def test_an_unknown_subcommand_or_flag_fails(line: str) -> None:
    block = Block(ROOT / "README.md", 0, "sh", line)
    [cmd] = commands_in(block)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(cmd.argv)
    assert exc.value.code == 2


def test_an_unmarked_command_that_needs_aws_is_refused() -> None:
    [cmd] = commands_in(Block(ROOT / "README.md", 0, "sh", "sentinel status --target prod-hive"))
    assert not cmd.needs_aws
    assert build_parser().parse_args(cmd.argv).command not in OFFLINE
    [marked] = commands_in(Block(ROOT / "README.md", 0, "sh", "sentinel status --target prod-hive   # needs AWS"))
    assert marked.needs_aws


# ---------------------------------------------------------------- the docs themselves

def test_the_generated_reference_is_current() -> None:
    text = CONFIG_DOC.read_text(encoding="utf-8")
    assert text == with_reference(text, reference_markdown()), \
        "docs/configuration.md's reference is stale: run python -m monitor.schema --write"


def test_the_runbook_names_every_page_kind_the_code_sends() -> None:
    from tests.unit.test_page_glance import page_kinds_in_code

    runbook = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = sorted(k for k in page_kinds_in_code() if f"`{k}`" not in runbook)
    assert not missing, f"docs/operations.md does not explain the page kinds {missing}"


def test_the_readme_is_the_first_five_minutes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert re.search(r"^make test\b", readme, re.M), "README must keep the test command line `make test` (.ci/run)"
    for doc in ("configuration", "operations", "deployment", "architecture", "benchmarks"):
        assert f"(docs/{doc}.md)" in readme
        assert (ROOT / "docs" / f"{doc}.md").is_file()


def test_relative_links_in_the_docs_resolve() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", re.sub(r"`[^`]*`", "", doc.read_text(encoding="utf-8"))):
            if "://" in target:
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken
