"""Bad input to the revision commands (parse-revision, resolve, list-revisions and every option
that takes a revision): a documented exit code and one line naming the problem, never exit 70.

Everything here runs offline against the bundled index, in-process, so it is fast.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import assert_one_line_error, olmo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HUGE = "9" * 5000
REPO = "allenai/OLMo-1B"


@pytest.mark.parametrize(
    "argv, code, fragment",
    [
        (["resolve", HUGE, "--repo", REPO, "--offline"], 2, "5000 digits"),
        (["resolve", "step" + HUGE, "--repo", REPO, "--offline"], 3, "not found"),
        (["resolve", HUGE + "B", "--repo", REPO, "--offline"], 3, "not found"),
        (["resolve", "²", "--repo", REPO, "--offline"], 3, "not found"),
        (["resolve", "", "--repo", REPO, "--offline"], 2, "empty revision"),
        (["resolve", "   ", "--repo", REPO, "--offline"], 2, "empty revision"),
        (["resolve", "main", "--repo", "not a repo", "--offline"], 2, "not a valid Hub repo id"),
        (["resolve", "main", "--repo", "a/b/c", "--offline"], 2, "not a valid Hub repo id"),
        (["resolve", "main", "--repo", "../../etc", "--offline"], 2, "not a valid Hub repo id"),
        (["list-revisions", REPO, "--offline", "--from", HUGE], 2, "5000 digits"),
        (["list-revisions", REPO, "--offline", "--from", "step" + HUGE], 2, "neither a step nor a token count"),
        (["list-revisions", REPO, "--offline", "--to", HUGE + "T"], 2, "neither a step nor a token count"),
        (["list-revisions", REPO, "--offline", "--from", "²"], 2, "neither a step nor a token count"),
        (["list-revisions", REPO, "--offline", "--from", "nan"], 2, "neither a step nor a token count"),
        (["list-revisions", REPO, "--offline", "--from", "infT"], 2, "neither a step nor a token count"),
        (["list-revisions", "allenai/Nope-0B", "--offline"], 3, "not in the bundled index"),
        (["download", REPO, "--offline", "--from", HUGE], 2, "5000 digits"),
        (["generate", REPO, "--offline", "-r", "step" + HUGE, "-p", "x"], 3, "not found"),
    ],
)
def test_bad_revision_input(argv, code, fragment):
    assert_one_line_error(olmo(*argv), code, fragment)


def test_parse_revision_of_a_huge_number_is_an_opaque_name():
    result = olmo("parse-revision", "step" + HUGE, "--json")
    assert result.exit_code == 0, result.output
    assert '"step": null' in result.stdout


def test_a_step_of_18_digits_still_parses():
    result = olmo("parse-revision", "step" + "9" * 18, "--json")
    assert result.exit_code == 0
    assert '"step": 999999999999999999' in result.stdout


def test_unknown_commit_sha_offline_says_it_cannot_be_checked():
    sha = "0123456789abcdef0123456789abcdef01234567"
    result = olmo("resolve", sha, "--repo", REPO, "--offline")
    assert result.exit_code == 0, result.output
    assert sha in result.stdout
    assert f"warning: commit {sha} cannot be checked offline" in result.stderr


def test_unknown_commit_sha_is_checked_against_the_hub(fake_hub):
    from fakehub import checkpoint_repo

    checkpoint_repo(fake_hub, "allenai/OLMo-fake", [1000])
    real = fake_hub.commit("allenai/OLMo-fake", "main")
    result = olmo("resolve", real, "--repo", "allenai/OLMo-fake")
    assert result.exit_code == 0, result.output
    assert real in result.stdout
    fake = "0123456789abcdef0123456789abcdef01234567"
    assert_one_line_error(olmo("resolve", fake, "--repo", "allenai/OLMo-fake"), 3, fake, "not found")


def _stdout_closed(argv):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: every write is EPIPE
    try:
        return subprocess.run(
            [sys.executable, "-m", "olmo_cli", *argv], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "argv", [["list-revisions", REPO, "--offline"], ["parse-revision", "step1"], ["--help"]], ids=str
)
def test_a_closed_pipe_on_stdout_stops_quietly(argv):
    result = _stdout_closed(argv)
    assert result.returncode == 141, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert "error" not in result.stderr


def test_closed_stdout_and_stdin_are_read_as_devnull():
    result = subprocess.run(
        f"{sys.executable} -m olmo_cli resolve main --repo {REPO} --offline >&- <&-",
        shell=True,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


# Every option that takes a revision (or a bound), offline, with any string at all.
_REVISION_OPTIONS = [
    lambda s: ["parse-revision", s],
    lambda s: ["resolve", s, "--repo", REPO, "--offline"],
    lambda s: ["list-revisions", REPO, "--offline", "--from", s],
    lambda s: ["list-revisions", REPO, "--offline", "--to", s],
    lambda s: ["download", REPO, "--offline", "-r", s],
    lambda s: ["verify", REPO, "-r", s],
    lambda s: ["cache", "rm", REPO, "-r", s],
    lambda s: ["inspect", REPO, "--offline", "-r", s],
    lambda s: ["convert", REPO, "/nonexistent/out", "--offline", "-r", s],
    lambda s: ["quantize", REPO, "/nonexistent/out", "--offline", "-r", s],
    lambda s: ["generate", REPO, "--offline", "-r", s, "-p", "x"],
]

_texts = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="0123456789stepokenBTM_-.²", max_size=40),
    st.from_regex(r"(stage[0-9]{1,30}-)?step[0-9]{1,40}(-tokens[0-9]{1,30}B)?", fullmatch=True),
    st.just(HUGE),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_texts, which=st.integers(0, len(_REVISION_OPTIONS) - 1))
def test_no_revision_string_is_an_internal_error(text, which):
    if "\x00" in text:
        text = text.replace("\x00", "")  # argv cannot hold NUL
    result = olmo(*_REVISION_OPTIONS[which](text))
    assert result.exit_code != 70, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def _complete(words: str) -> list[str]:
    env = {
        **os.environ,
        "_OLMO_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    result = subprocess.run([sys.executable, "-m", "olmo_cli"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_revision_completion_for_a_repo_outside_the_index_offers_only_its_cached_names(isolated_caches):
    root = isolated_caches / "hf-cache" / "models--someone--mini"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "step11-tokens1B").write_text("a" * 40)
    (root / "snapshots" / ("a" * 40)).mkdir(parents=True)
    assert _complete("olmo download someone/mini -r step11") == ["step11-tokens1B"]
    assert _complete("olmo convert someone/other out -r step11") == []  # nothing of OLMo-1B/7B mixed in
    got = _complete(f"olmo generate {REPO} -r step117")
    assert got and all(name in ("step117000-tokens491B", "step117850-tokens494B") for name in got)
