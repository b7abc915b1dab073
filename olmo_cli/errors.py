"""The one error type for expected failures, and the exit codes the CLI maps them to.

Core code raises `OlmoError` (or a subclass) with a message a person can act on and,
where it helps, a hint. The CLI prints `error: <message>` (and `hint: <hint>`) on stderr
and exits with `exit_code`. Anything else that escapes is a bug.
"""

from __future__ import annotations

# Documented in README.md ("Exit codes"); keep the two in step.
EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran but some of its work failed (a sweep with failed revisions)
EXIT_USAGE = 2  # bad command-line usage (click's own code for usage errors)
EXIT_NOT_FOUND = 3  # a repo, revision, file or path that does not exist
EXIT_NETWORK = 4  # the Hub could not be reached or answered with an error
EXIT_BAD_INPUT = 5  # input that exists but is invalid: a corrupt checkpoint, bad config, bad value
EXIT_EXISTS = 6  # the output exists and --force was not given
EXIT_MISMATCH = 7  # a verification found a difference (logits, hashes, sizes)
EXIT_UNSUPPORTED = 8  # a valid input the tool does not support (an architecture, a method here)
EXIT_AUTH = 9  # 401/403: a missing or expired token, a gated repo
EXIT_INTERNAL = 70  # a bug: an unexpected exception
EXIT_INTERRUPTED = 130  # SIGINT
EXIT_BROKEN_PIPE = 141  # stdout's reader went away (`| head -1`), as if killed by SIGPIPE


class OlmoError(Exception):
    """An expected failure, shown to the user as one line (plus an optional hint)."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): library
    messages can span lines, and errors here are one line."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class UsageError(OlmoError):
    exit_code = EXIT_USAGE


class NotFoundError(OlmoError):
    exit_code = EXIT_NOT_FOUND


class NetworkError(OlmoError):
    exit_code = EXIT_NETWORK


class BadInputError(OlmoError):
    exit_code = EXIT_BAD_INPUT


class ExistsError(OlmoError):
    exit_code = EXIT_EXISTS


class MismatchError(OlmoError):
    exit_code = EXIT_MISMATCH


class UnsupportedError(OlmoError):
    exit_code = EXIT_UNSUPPORTED


class AuthError(OlmoError):
    exit_code = EXIT_AUTH


def short(text: str, limit: int = 160) -> str:
    """`text` on one line, cut to `limit` characters (for quoting what a parser said)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
