"""The docs against the code: README's exit codes, command list and examples; docs/REFERENCE.md's citations."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from olmo_cli import errors
from olmo_cli.cli.app import app, load_command
from olmo_cli.cli.registry import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The rows of the first table in `text`, without its header and rule."""
    match = re.search(r"^\|.*?(?=^[^|]|\Z)", text, flags=re.M | re.S)
    assert match, "no table"
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in match.group(0).splitlines()]
    return [row for row in rows if not set(row[0]) <= {"-"}][1:]


def example_lines(text: str) -> list[str]:
    """`olmo ...` command lines of the ```bash blocks, without comments and continuation."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if re.search(r"(^|\s)olmo\s", line):
                lines.append(line)
    return lines


def help_examples(path: str) -> list[str]:
    docstring = resolve(path).help or ""
    block = docstring.split("Examples:", 1)[1] if "Examples:" in docstring else ""
    return [re.sub(r"\s+(#.*|\(.*\))$", "", line).strip() for line in block.splitlines() if "olmo " in line]


def resolve(path: str):
    name, *sub = path.split()
    command = load_command(name)
    return command.commands[sub[0]] if sub else command


def test_exit_code_table_matches_errors_py():
    documented = {int(row[0]) for row in table_rows(section("Exit codes"))}
    defined = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert documented == defined
    raised = {
        cls.exit_code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.OlmoError)
    }
    assert raised <= documented


def test_command_table_matches_the_registry():
    names = [re.match(r"`olmo ([a-z-]+)", row[0]).group(1) for row in table_rows(section("Commands"))]
    assert sorted(names) == sorted(COMMANDS)  # each once; the order is the README's to choose


def argv_of(line: str) -> list[str]:
    """The olmo arguments of a shell line (after `|`, before `&&`), with placeholders filled."""
    segment = next(part for part in re.split(r"\||&&", line) if re.search(r"(^|\s)olmo\s", part))
    words = shlex.split(segment)
    return words[words.index("olmo") + 1 :]


def parses(argv: list[str]) -> None:
    """Parse (types, choices, option names, arity) without running the command."""
    path = [argv[0], argv[1]] if argv[0] == "cache" else [argv[0]]
    command = resolve(" ".join(path))
    command.make_context("olmo " + " ".join(path), argv[len(path) :])


@pytest.mark.parametrize("line", example_lines(README))
def test_readme_examples_parse(line):
    parses(argv_of(line))


@pytest.mark.parametrize("name", [*sorted(set(COMMANDS) - {"cache"}), "cache ls", "cache rm"])
def test_help_examples_parse_and_share_some_with_the_readme(name):
    examples = help_examples(name)
    assert examples, f"olmo {name} --help has no examples"
    for line in examples:
        parses(argv_of(line))
    readme = {" ".join(argv_of(line)) for line in example_lines(README)}
    shared = [line for line in examples if " ".join(argv_of(line)) in readme]
    assert shared, f"none of olmo {name}'s --help examples is in README.md: {examples}"


def test_an_example_with_a_stale_option_fails_to_parse():
    with pytest.raises(Exception, match="No such option"):
        parses(["list-revisions", "allenai/OLMo-7B", "--every-nth", "3"])
    assert app is not None


def test_every_reference_citation_names_a_section_of_docs_reference():
    headings = re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", (ROOT / "docs" / "REFERENCE.md").read_text(), flags=re.M)
    sections = set(headings)
    cited: dict[str, set[str]] = {}
    for path in [*ROOT.glob("olmo_cli/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py")]:
        for match in re.finditer(r"REFERENCE(?:\.md)?(?: sections?)? ([\d.]+(?:(?:/| and )[\d.]+)*)", path.read_text()):
            for number in re.split(r"/| and ", match.group(1).rstrip(".")):
                cited.setdefault(number, set()).add(path.name)
    assert len(cited) >= 4  # the pattern finds the citations (1, 2, 3.1, 3.3 at least)
    assert {number: files for number, files in cited.items() if number not in sections} == {}
