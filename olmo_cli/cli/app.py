"""The root `olmo` app: global options, lazy command loading, and error handling."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from olmo_cli import __version__
from olmo_cli.cli.output import one_line
from olmo_cli.cli.registry import COMMANDS
from olmo_cli.errors import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, OlmoError, first_line


class LazyGroup(TyperGroup):
    """A group whose subcommands are imported on first use; listed from static help strings."""

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, cmd_name: str):
        if cmd_name not in COMMANDS:
            return None
        return load_command(cmd_name)

    def format_commands(self, ctx, formatter) -> None:
        # Static help strings: listing the commands must not import them.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OlmoError as error:
            _fail(error.message, error.hint, error.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", None, EXIT_INTERRUPTED)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BrokenPipeError:  # `olmo ... | head -1`: the reader has all it wanted
            _stdout_gone()
        except OSError as error:  # the machine's problem (full or read-only disk...), not a bug
            if _debug_enabled():
                raise
            from olmo_cli.oserrors import describe_os_error

            described = describe_os_error(error)
            _fail(described.message, described.hint, described.exit_code)
        except Exception as error:  # a bug: one line unless --debug
            if _debug_enabled():
                raise
            if _is_click_exception(error):
                raise
            _fail(
                f"internal error: {type(error).__name__}: {first_line(error)}",
                "run again with --debug for the traceback, and report it",
                EXIT_INTERNAL,
            )


def load_command(name: str):
    module = importlib.import_module(COMMANDS[name][0])
    command = typer.main.get_command(module.app)
    command.name = name
    _refuse_empty_paths(command)
    return command


def _refuse_empty_paths(command) -> None:
    """A path argument given as '' is a usage error: Path('') is '.', so `convert SRC ''` would
    otherwise write into (or refuse) the current directory."""
    from typer import _click

    for param in command.params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or "Path" not in str(descriptor.annotation):
            continue

        def checked(ctx, value, process=param.process_value, param=param):
            if isinstance(value, str) and not value.strip():
                raise _click.exceptions.BadParameter("the path is empty", ctx=ctx, param=param)
            return process(ctx, value)

        param.process_value = checked
    for sub in getattr(command, "commands", {}).values():
        _refuse_empty_paths(sub)


def _is_click_exception(error: Exception) -> bool:
    from typer import _click

    return isinstance(error, _click.exceptions.ClickException)


def _debug_enabled() -> bool:
    return os.environ.get("OLMO_DEBUG", "") not in ("", "0")


def _fail(message: str, hint: str | None, code: int):
    sys.stderr.write(f"error: {one_line(message)}\n")
    if hint:
        sys.stderr.write(f"hint: {one_line(hint)}\n")
    raise typer.Exit(code)


app = typer.Typer(
    cls=LazyGroup,
    name="olmo",
    help="Find, fetch, convert, shrink and run OLMo checkpoints.",
    epilog="Run 'olmo COMMAND --help' for a command's options and examples.",
    rich_markup_mode=None,  # plain help: rich costs startup time on every call
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)


def _version(value: bool):
    if value:
        typer.echo(f"olmo {__version__}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")]


@app.callback()
def root(version: VersionOpt = False, debug: DebugOpt = False):
    """Find, fetch, convert, shrink and run OLMo checkpoints."""
    if debug:
        os.environ["OLMO_DEBUG"] = "1"
    else:
        _quiet_library_warnings()


# Import-time warnings from libraries that say nothing about the user's command (torchao's optional
# CUDA kernels failing to load on a CPU machine, torch's pytree deprecations, bitsandbytes' missing optional
# CPU kernels and per-call cast notes); --debug shows them.
_NOISY_LOGGERS = ("torchao", "torch.utils._pytree", "bitsandbytes")


def _quiet_library_warnings() -> None:
    import logging

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def main() -> None:
    _fill_closed_standard_streams()
    _never_fail_to_print()
    _stop_on_sigterm()
    try:
        try:
            app(prog_name="olmo")
        finally:
            sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe is a noisy warning
    except BrokenPipeError:
        _stdout_gone()
    except SystemExit:
        if type(sys.stdout).__name__ == "PacifyFlushWrapper":  # click's own answer to a closed pipe (exit 1)
            raise SystemExit(EXIT_BROKEN_PIPE) from None
        raise


def _stdout_gone():
    """The reader of stdout went away: stop quietly (no 'Exception ignored' noise at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(EXIT_BROKEN_PIPE)


def _never_fail_to_print() -> None:
    """An ASCII locale or PYTHONIOENCODING cannot encode every path or model output: write such
    characters as escapes (\\xff, \\u2713) instead of failing with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # not a text file with an encoding (a test's capture)
            pass


def _fill_closed_standard_streams() -> None:
    """A closed stdin/stdout/stderr (`olmo ... >&-`) becomes /dev/null: otherwise the next file
    opened takes descriptor 0, 1 or 2 and output would land in it."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDONLY if mode == "r" else os.O_WRONLY)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115  # lives as long as the process


def _stop_on_sigterm() -> None:
    """`kill` stops a command the way Ctrl-C does, so partial outputs are cleaned up (exit 130)."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
