"""Every command in README.md and docs/*.md works against the real command line.

The project's rule is that a reader can paste any command from the docs. This module
reads every Markdown page, pulls out the shell commands (from shell code blocks, from
plain code blocks whose lines start like a command, and from inline code spans that
start like one) with the page and line they came from, and checks each one:

* ``querywarden ...`` is parsed by the real click command behind the Typer app, so an
  unknown subcommand, an unknown option or a missing value fails with ``page:line``.
  Commands in code blocks get the full parse (required options, value types, extra
  arguments); inline spans are synopses (``--profile ci|full``, ``TRAFFIC.jsonl``) whose
  subcommand and option names are checked.
* The cheap ones in code blocks are run for real, in order, in one temporary folder per
  page (``/tmp/`` in a doc means that folder), and must exit 0. Servers and long runs are
  parsed only; ``PARSE_ONLY`` says which and why.
* ``python SCRIPT.py ARGS`` needs the script to exist, and its own argparse parser must
  accept ARGS (the script is started with ``parse_args`` made to stop right after parsing).
* ``make TARGET`` needs ``make -n TARGET`` to succeed; ``pip install -e '.[x,y]'`` needs the
  extras in pyproject.toml; ``pytest PATH`` needs the path.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main

from querywarden.cli import app

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

SHELL_LANGS = {"bash", "sh", "shell", "console"}
COMMAND_START = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\.venv/bin/\S+|querywarden|make|python3?)(?:\s|$)")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
OPERATORS = {"|", "||", "&&", ";", "&"}
REDIRECTS = {">", ">>", "<", "2>", "2>>", "&>"}

# Subcommands that a doc may show but this test does not run, and why. Every other
# subcommand in a code block is run for real (``--help`` and ``--version`` always are).
PARSE_ONLY = {
    "serve": "starts the gateway, which serves until stopped (tests/test_gateway_serve.py runs it)",
    "console": "starts the console's web server, which serves until stopped (tests/test_console_command.py runs it)",
    "bench": "trains victims and runs real attacks for minutes (tests/test_bench_ci.py runs the ci profile)",
}
RUN = {"replay", "profile", "calibrate", "demo", "stix"}

# Programs that doc commands may start with but that cannot be checked offline.
NOT_CHECKED = {
    "curl": "talks to a running admin port; the REST API is tested in tests/test_api.py",
}


@dataclass(frozen=True)
class DocCommand:
    """One shell command as a page shows it."""

    page: str
    line: int
    argv: tuple[str, ...]
    in_block: bool
    synopsis: bool = False  # shows ``[--option]`` notation, which does not run as pasted

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def program(self) -> str:
        return Path(self.argv[0]).name


# ---- extraction ---------------------------------------------------------------------


def _split(text: str) -> list[list[str]]:
    """Shell words of one command line, cut at operators, without redirections.

    Synopsis notation is undone on the way: ``[--opt X]`` loses its brackets and
    ``a|b`` (no spaces, so not a pipe) keeps its first alternative.
    """
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        words = text.split()
    commands: list[list[str]] = [[]]
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
            continue
        if word in OPERATORS:
            commands.append([])
            continue
        if word in REDIRECTS:
            skip_next = True
            continue
        if word.startswith("["):
            word = word[1:]
        if word.endswith("]") and "[" not in word:
            word = word[:-1]
        if "|" in word and word not in OPERATORS:
            word = word.split("|")[0]
        if word and word != "...":
            commands[-1].append(word)
    out = []
    for cmd in commands:
        while cmd and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", cmd[0]):
            cmd = cmd[1:]  # environment assignments before the program
        if cmd:
            out.append(cmd)
    return out


def extract(page: str, text: str) -> list[DocCommand]:
    """Every command in one Markdown page, with the line it starts on."""
    found: list[DocCommand] = []
    lines = text.splitlines()
    fence: str | None = None
    lang = ""
    pending: list[str] = []
    pending_line = 0
    paragraph: list[tuple[int, str]] = []

    def flush_paragraph() -> None:
        for line_no, span in _inline_spans(paragraph):
            if COMMAND_START.match(span):
                for argv in _split(span):
                    found.append(DocCommand(page, line_no, tuple(argv), in_block=False))
        paragraph.clear()

    for number, line in enumerate(lines, start=1):
        opening = FENCE.match(line)
        if fence is None:
            if opening:
                flush_paragraph()
                fence, lang = opening.group(1), opening.group(2).lower()
            elif line.strip():
                paragraph.append((number, line))
            else:
                flush_paragraph()
            continue
        if line.strip().startswith(fence[0] * 3) and line.strip().strip(fence[0]) == "":
            fence = None
            continue
        if lang not in SHELL_LANGS and lang != "":
            continue
        body = line.strip()
        if lang == "console" and not body.startswith("$ "):
            continue  # a console block's output lines
        body = body.removeprefix("$ ")
        if not pending:
            if not body or body.startswith("#"):
                continue
            if lang == "" and not COMMAND_START.match(body):
                continue
            pending_line = number
        if body.endswith("\\"):
            pending.append(body[:-1])
            continue
        pending.append(body)
        joined = " ".join(pending)
        synopsis = re.search(r"(?:^|\s)\[-", joined) is not None
        for argv in _split(joined):
            found.append(DocCommand(page, pending_line, tuple(argv), in_block=True, synopsis=synopsis))
        pending.clear()
    flush_paragraph()
    return found


def _inline_spans(paragraph: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Inline code spans of a paragraph (they may wrap lines), with their line."""
    if not paragraph:
        return
    first = paragraph[0][0]
    text = "\n".join(line for _, line in paragraph)
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        span = match.group(1).replace("\\|", "|").replace("\n", " ").strip()
        yield first + text.count("\n", 0, match.start()), span


def all_commands() -> list[DocCommand]:
    return [cmd for page in PAGES for cmd in extract(page.relative_to(REPO).as_posix(), page.read_text("utf-8"))]


# ---- checks -------------------------------------------------------------------------

ROOT = typer.main.get_command(app)  # the click group Typer builds (Typer ships its own click)


def _message(exc: typer.TyperException) -> str:
    format_message = getattr(exc, "format_message", None)
    return str(format_message() if format_message else exc)


def _checked_values(subcommand: str) -> dict[str, tuple[str, ...]]:
    """Values a command checks itself when it runs, so a parse alone would not catch a typo."""
    if subcommand != "bench":
        return {}
    from querywarden.commands import bench

    return {"profile": bench._PROFILES, "suite": bench._SUITES}


def check_querywarden(cmd: DocCommand) -> None:
    """Parse a querywarden command with the real click command; raise with page:line.

    A code block gets click's full parse of the subcommand (``make_context``): unknown
    options, missing values, required options, value types and extra arguments. An inline
    span is a synopsis or a mention (``querywarden replay --db``): its subcommand and the
    names of its options must exist.
    """
    args = list(cmd.argv[1:])
    if not args:
        return  # the program named on its own
    try:
        root = ROOT.make_context("querywarden", args, resilient_parsing=False)
        if args[0].startswith("-"):
            return
        name, sub, rest = ROOT.resolve_command(root, args)  # type: ignore[attr-defined]
        if cmd.in_block:
            parsed = sub.make_context(name, rest, parent=root, resilient_parsing=False)
            for option, allowed in _checked_values(name).items():
                value = parsed.params.get(option)
                assert value in allowed, f"{cmd.where}: `{' '.join(cmd.argv)}`: {option} {value!r}; allowed: {allowed}"
            return
    except typer.Exit as exc:  # --help and --version end parsing early on purpose
        assert exc.exit_code == 0, f"{cmd.where}: `{' '.join(cmd.argv)}` exits {exc.exit_code}"
        return
    except typer.TyperException as exc:
        raise AssertionError(f"{cmd.where}: `{' '.join(cmd.argv)}`: {_message(exc)}") from None
    known = {opt for param in sub.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
    unknown = [a.split("=")[0] for a in rest if a.startswith("-") and a != "-" and a.split("=")[0] not in known]
    assert not unknown, f"{cmd.where}: `{' '.join(cmd.argv)}`: no option {unknown} (has: {', '.join(sorted(known))})"


# Starts a script or module with argparse made to stop right after a successful parse, so
# the script's own parser judges the doc's arguments and nothing else of it runs.
_PARSE_ONLY = """
import argparse, runpy, sys
from pathlib import Path
real = argparse.ArgumentParser.parse_args
def parse_then_stop(self, args=None, namespace=None):
    real(self, args, namespace)
    raise SystemExit(0)
argparse.ArgumentParser.parse_args = parse_then_stop
if sys.argv[1] == "-m":
    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(Path(sys.argv[0]).resolve().parent))
    runpy.run_path(sys.argv[0], run_name="__main__")
raise SystemExit(3)
"""


def check_python(cmd: DocCommand) -> None:
    """The script (or ``-m`` module) exists and its argparse parser accepts the doc's arguments."""
    args = list(cmd.argv[1:])
    assert args, f"{cmd.where}: `{' '.join(cmd.argv)}` names no script"
    if args[0] == "-m":
        assert len(args) > 1, f"{cmd.where}: `{' '.join(cmd.argv)}` names no module"
        spec = importlib.util.find_spec(args[1])
        assert spec is not None and spec.origin, f"{cmd.where}: no module {args[1]}"
        source = Path(spec.origin).read_text("utf-8")
        doc_args = args[2:]
    else:
        assert args[0].endswith(".py"), f"{cmd.where}: `{' '.join(cmd.argv)}` names no script"
        script = REPO / args[0]
        assert script.is_file(), f"{cmd.where}: {args[0]} does not exist"
        source = script.read_text("utf-8")
        compile(source, str(script), "exec")
        doc_args = args[1:]
    if "argparse" not in source:
        assert not doc_args, f"{cmd.where}: {args[0]} takes no options, the doc passes {doc_args}"
        return
    done = subprocess.run(
        [sys.executable, "-c", _PARSE_ONLY, *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{cmd.where}: `{' '.join(cmd.argv)}` does not parse: {done.stderr.strip()[-600:]}"


def check_make(cmd: DocCommand) -> None:
    """``make -n TARGET`` succeeds: the target exists and its prerequisites resolve.

    Targets are never run here: each first installs the pinned environment, ``test`` and
    ``lint`` run the suite this test belongs to, and ``demo`` is run above as a command.
    """
    targets = [a for a in cmd.argv[1:] if not a.startswith("-") and "=" not in a] or [""]
    for target in targets:
        done = subprocess.run(["make", "-n", "-C", str(REPO), *filter(None, [target])], capture_output=True, text=True)
        assert done.returncode == 0, f"{cmd.where}: `make {target}`: {done.stderr.strip()}"


def check_pip(cmd: DocCommand) -> None:
    """``pip install -e '.[a,b]'``: the extras exist in pyproject.toml."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["optional-dependencies"]
    for arg in cmd.argv[1:]:
        match = re.fullmatch(r"\.\[([\w,-]+)\]", arg)
        if match:
            missing = [e for e in match.group(1).split(",") if e not in extras]
            assert not missing, f"{cmd.where}: no extra {missing} in pyproject.toml (has {sorted(extras)})"


def check_pytest(cmd: DocCommand) -> None:
    for arg in cmd.argv[1:]:
        if not arg.startswith("-"):
            assert (REPO / arg.split("::")[0]).exists(), f"{cmd.where}: pytest path {arg} does not exist"


CHECKS: dict[str, Callable[[DocCommand], None]] = {
    "querywarden": check_querywarden,
    "python": check_python,
    "python3": check_python,
    "make": check_make,
    "pip": check_pip,
    "pytest": check_pytest,
}


def check(cmd: DocCommand) -> None:
    assert not cmd.synopsis, (
        f"{cmd.where}: a code block shows `[--option]` synopsis notation, which fails when pasted; "
        "show a command that runs and describe the options in the text"
    )
    if cmd.program in NOT_CHECKED:
        return
    checker = CHECKS.get(cmd.program)
    assert checker is not None, (
        f"{cmd.where}: `{' '.join(cmd.argv)}`: this test does not know how to check {cmd.program!r}; "
        "teach it (CHECKS) or say why it cannot (NOT_CHECKED)"
    )
    checker(cmd)


# ---- running ------------------------------------------------------------------------


def runnable(cmd: DocCommand) -> bool:
    """Whether a parsed querywarden command in a code block is run for real."""
    if cmd.program != "querywarden" or not cmd.in_block:
        return False
    args = cmd.argv[1:]
    if "--help" in args or args[:1] == ("--version",):
        return True
    if not args:
        return False
    assert args[0] in RUN or args[0] in PARSE_ONLY, (
        f"{cmd.where}: `querywarden {args[0]}` is neither run (RUN) nor listed in PARSE_ONLY with a reason"
    )
    return args[0] in RUN


def _traffic_examples(page_text: str, folder: Path) -> None:
    """traffic-format.md says "save them to a file and try": save its JSON examples."""
    blocks = re.findall(r"```json\n(.*?)```", page_text, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith('{"id"')]
    (folder / "examples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


# What a page asks the reader to set up before its commands.
SETUP: dict[str, Callable[[str, Path], None]] = {"docs/traffic-format.md": _traffic_examples}


def run(cmd: DocCommand, folder: Path) -> None:
    """Run the command from a folder that looks like the checkout, /tmp mapped into it."""
    exe = Path(sys.executable).with_name("querywarden")
    args = [arg.replace("/tmp/", f"{folder}/") if "/tmp/" in arg else arg for arg in cmd.argv[1:]]
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    done = subprocess.run([str(exe), *args], cwd=folder, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, (
        f"{cmd.where}: `{' '.join(cmd.argv)}` exited {done.returncode}:\n{done.stderr.strip()[-1500:]}"
    )


def _checkout_view(folder: Path) -> None:
    """Relative paths in the docs are relative to the checkout: link its tracked folders."""
    for name in ("src", "tests", "docs", "benchmarks"):
        (folder / name).symlink_to(REPO / name)


# ---- tests --------------------------------------------------------------------------

COMMANDS = all_commands()


def _page_id(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_command_on_the_page_parses(page: Path) -> None:
    failures = []
    for cmd in COMMANDS:
        if cmd.page != _page_id(page):
            continue
        try:
            check(cmd)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


PAGES_THAT_RUN = sorted({cmd.page for cmd in COMMANDS if cmd.program == "querywarden" and runnable(cmd)})


@pytest.mark.parametrize("page", PAGES_THAT_RUN)
def test_cheap_commands_on_the_page_run(page: str, tmp_path: Path) -> None:
    _checkout_view(tmp_path)
    if page in SETUP:
        SETUP[page]((REPO / page).read_text("utf-8"), tmp_path)
    for cmd in COMMANDS:
        if cmd.page == page and runnable(cmd):
            run(cmd, tmp_path)


def test_the_docs_show_commands_and_run_some() -> None:
    """Guards the extractor itself: the CLI page's commands are found and some run."""
    pages = {cmd.page for cmd in COMMANDS}
    assert {"docs/cli.md", "docs/benchmark.md", "docs/gateway.md"} <= pages
    subcommands = {cmd.argv[1] for cmd in COMMANDS if cmd.program == "querywarden" and len(cmd.argv) > 1}
    assert {"replay", "profile", "calibrate", "demo", "stix", "serve", "console", "bench"} <= subcommands
    assert "docs/cli.md" in PAGES_THAT_RUN


def test_a_command_that_fails_fails_the_page(tmp_path: Path) -> None:
    cmd = DocCommand("x.md", 7, (".venv/bin/querywarden", "replay", "no-such-traffic.jsonl"), in_block=True)
    assert runnable(cmd)
    with pytest.raises(AssertionError, match=r"^x\.md:7: .* exited 2"):
        run(cmd, tmp_path)


def test_the_index_maps_every_page() -> None:
    index = (REPO / "docs" / "index.md").read_text("utf-8")
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    pages = {p.name for p in PAGES if p.parent.name == "docs"} - {"index.md"}
    assert pages - linked == set(), "pages missing from docs/index.md"
    assert linked - pages == set(), "docs/index.md links pages that do not exist"


def _long_options(subcommand: str) -> set[str]:
    ctx = ROOT.make_context("querywarden", [subcommand], resilient_parsing=True)
    cmd = ROOT.get_command(ctx, subcommand)  # type: ignore[attr-defined]
    return {opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--")}


def test_cli_page_names_every_option_in_its_commands_section() -> None:
    """docs/cli.md has a section per command; each names all of that command's options."""
    text = (REPO / "docs" / "cli.md").read_text("utf-8")
    missing = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        for subcommand in re.findall(r"`querywarden (\w+)", section.splitlines()[0]):
            missing += [f"{subcommand} {opt}" for opt in sorted(_long_options(subcommand)) if opt not in section]
    documented = {sub for sub in re.findall(r"^## .*?`querywarden (\w+)", text, flags=re.M)}
    documented |= set(re.findall(r"^## `querywarden \w+.*? and `querywarden (\w+)", text, flags=re.M))
    assert documented == PARSE_ONLY.keys() | RUN, "docs/cli.md has a section for every command"
    assert not missing, f"options missing from their section of docs/cli.md: {missing}"


def test_parse_only_names_real_subcommands() -> None:
    real = set(ROOT.list_commands(ROOT.make_context("querywarden", ["--help"], resilient_parsing=True)))  # type: ignore[attr-defined]
    assert set(PARSE_ONLY) | RUN == real, "every subcommand is either run or parsed only, with a reason"


SAMPLE_PAGE = """# Sample

Run `querywarden replay --findigns out.jsonl` or `querywarden bench --profile ci|full`.

```sh
.venv/bin/querywarden replay t.jsonl \\
    --config c.toml --bogus > out.txt
QW=1 .venv/bin/pytest tests/e2e
```

```
querywarden.toml:4: models.credit.colour: unknown key
make nosuchtarget
```

```toml
querywarden = "not a command"
```
"""


def test_extract_finds_blocks_spans_and_continuations() -> None:
    found = [(c.line, c.argv, c.in_block) for c in extract("sample.md", SAMPLE_PAGE)]
    assert found == [
        (3, ("querywarden", "replay", "--findigns", "out.jsonl"), False),
        (3, ("querywarden", "bench", "--profile", "ci"), False),
        (6, (".venv/bin/querywarden", "replay", "t.jsonl", "--config", "c.toml", "--bogus"), True),
        (8, (".venv/bin/pytest", "tests/e2e"), True),
        (13, ("make", "nosuchtarget"), True),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (3, "no option ['--findigns']"),
        (6, "No such option: --bogus"),
        (13, "nosuchtarget"),
    ],
)
def test_wrong_commands_fail_with_page_and_line(line: int, message: str) -> None:
    cmds = [c for c in extract("sample.md", SAMPLE_PAGE) if c.line == line and "ci" not in c.argv]
    with pytest.raises(AssertionError, match=rf"^sample\.md:{line}: .*{re.escape(message)}"):
        check(cmds[0])


def test_a_bench_profile_the_command_would_refuse_fails() -> None:
    check(DocCommand("z.md", 1, ("querywarden", "bench", "--profile", "full", "--suite", "llm"), in_block=True))
    with pytest.raises(AssertionError, match=r"^z\.md:2: .*profile 'ful'; allowed"):
        check(DocCommand("z.md", 2, ("querywarden", "bench", "--profile", "ful"), in_block=True))


def test_synopsis_notation_in_a_code_block_fails() -> None:
    page = "```sh\nquerywarden console --db sqlite:///q.db [--port 8081]\n```\n"
    (cmd,) = extract("y.md", page)
    with pytest.raises(AssertionError, match=r"^y\.md:2: a code block shows `\[--option\]`"):
        check(cmd)


def test_unknown_subcommand_and_missing_value_fail() -> None:
    with pytest.raises(AssertionError, match=r"^x\.md:1: .*No such command 'replya'"):
        check(DocCommand("x.md", 1, ("querywarden", "replya", "t.jsonl"), in_block=True))
    with pytest.raises(AssertionError, match=r"^x\.md:2: .*requires an argument"):
        check(DocCommand("x.md", 2, ("querywarden", "replay", "t.jsonl", "--config"), in_block=True))
    with pytest.raises(AssertionError, match=r"^x\.md:3: .*Missing option '--upstream'"):
        check(DocCommand("x.md", 3, ("querywarden", "serve", "--port", "8080"), in_block=True))
    with pytest.raises(AssertionError, match=r"^x\.md:4: .*does not know how to check 'rm'"):
        check(DocCommand("x.md", 4, ("rm", "-rf", "x"), in_block=True))


def test_script_options_are_checked_by_the_scripts_own_parser() -> None:
    check(DocCommand("x.md", 1, (".venv/bin/python", "benchmarks/replay_throughput.py"), in_block=True))
    with pytest.raises(AssertionError, match=r"(?s)^x\.md:2: .*unrecognized arguments: --no-such-flag"):
        check(DocCommand("x.md", 2, (".venv/bin/python", "benchmarks/replay_throughput.py", "--no-such-flag"), True))
    with pytest.raises(AssertionError, match=r"^x\.md:3: benchmarks/nope\.py does not exist"):
        check(DocCommand("x.md", 3, ("python", "benchmarks/nope.py"), in_block=True))
    with pytest.raises(AssertionError, match=r"(?s)^x\.md:4: .*unrecognized arguments: --prot"):
        check(DocCommand("x.md", 4, ("python", "-m", "querywarden.llm.server", "--prot", "9000"), in_block=False))


@pytest.mark.parametrize(("command", "table"), [("replay", "[[exports]]"), ("console", "[console]")])
def test_help_names_the_config_tables_the_docs_name(command: str, table: str) -> None:
    """Help text goes through rich markup, where a bare ``[console]`` would vanish."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert table in result.output
