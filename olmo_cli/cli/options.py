"""Shared option and argument declarations, so every command spells them the same way.

One style throughout: `name: SomeOpt = default`, where SomeOpt is an `Annotated` alias (here, or
next to the command when only it has the option). Closed choices are Enums, so that `--help` and
TAB completion list them. Every option names its value (REPO, REV, N ...) in the usage lines.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

from olmo_cli.checkpoints.kinds import DType as DType  # re-exported: the commands take it from here
from olmo_cli.checkpoints.kinds import Target
from olmo_cli.cli.completion import complete_device, complete_repo, complete_revision
from olmo_cli.revisions.select import Selection


class PlainUsageCommand(TyperCommand):
    """Usage lines as the README writes them: `olmo convert [OPTIONS] SRC DST`, `[REPO]`, `NAME...`
    (Typer's own are `{SRC} {DST}`)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                pieces += param.get_usage_pieces(ctx)
                continue
            name = param.metavar or (param.name or "").upper()
            if param.nargs != 1 and not name.endswith("..."):
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class CommandApp(typer.Typer):
    """A command module's app: plain help, plain usage lines, and no completion options of its own
    (the root app owns them)."""

    def command(self, *args, **kwargs):
        kwargs.setdefault("cls", PlainUsageCommand)
        return super().command(*args, **kwargs)


def command_app(**settings) -> typer.Typer:
    return CommandApp(rich_markup_mode=None, add_completion=False, **settings)


# ----- closed choices -----
# Formats and dtypes have one table each, in checkpoints.kinds (a light module: Enums only).
TargetFormat = Target


class QuantizeMethod(str, Enum):
    """What `olmo quantize --method` writes: olmo_cli.quantize.methods.QUANTIZE_METHODS (a test checks)."""

    int8 = "int8"
    int8_dynamic = "int8-dynamic"
    int4 = "int4"
    nf4 = "nf4"
    fp16 = "fp16"
    bf16 = "bf16"


class LoadQuantization(str, Enum):
    """What `olmo generate --quantize` applies at load time: the torchao methods of the table."""

    int8 = "int8"
    int8_dynamic = "int8-dynamic"
    int4 = "int4"


def complete_load_quantization(incomplete: str) -> list[str]:
    """`generate --quantize` stays a plain option (a wrong name is olmo's one-line error), so TAB lists these."""
    return [choice.value for choice in LoadQuantization if choice.value.startswith(incomplete)]


# ----- arguments -----
RepoArg = Annotated[
    str,
    typer.Argument(
        metavar="REPO", help="Hub repo id, e.g. allenai/OLMo-7B.", autocompletion=complete_repo, show_default=False
    ),
]
SourceArg = Annotated[
    str,
    typer.Argument(
        metavar="SRC",
        help="A local checkpoint directory (native, hf_olmo or transformers) or a Hub repo id.",
        autocompletion=complete_repo,
        show_default=False,
    ),
]
OutputArg = Annotated[
    Path,
    typer.Argument(metavar="DST", help="Output directory (must not exist unless --force).", show_default=False),
]

# ----- options -----
RepoOpt = Annotated[
    str | None,
    typer.Option(
        "--repo",
        metavar="REPO",
        help="Hub repo id (inferred from the revision when it belongs to one known repo).",
        autocompletion=complete_repo,
        show_default=False,
    ),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        "--revision",
        "-r",
        metavar="REV",
        help="Revision: an exact name, step452000, 2T, 2000B, main, latest.",
        autocompletion=complete_revision,
        show_default=False,
    ),
]
RevisionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--revision",
        "-r",
        metavar="REV",
        help="Revision (repeatable): an exact name, step452000, 2T, 2000B, main, latest.",
        autocompletion=complete_revision,
        show_default=False,
    ),
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Do not contact the Hub (also HF_HUB_OFFLINE=1).")]
RefreshOpt = Annotated[
    bool, typer.Option("--refresh", help="Ask the Hub even if its answer from the last 5 minutes is cached.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print names only, one a line.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output.")]
OutputsDeleteAfterOpt = Annotated[
    bool,
    typer.Option(
        "--delete-after",
        help="With a selection: remove each source revision from the HF cache once its output is "
        "written (unless it was cached before).",
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")]
AllFilesOpt = Annotated[
    bool, typer.Option("--all-files", help="Every file of the revision, not only what a model needs.")
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="auto|cpu|cuda[:N]|mps",
        help="auto: cuda, then mps, then cpu.",
        autocompletion=complete_device,
    ),
]

# ----- revision selection: six options, one Selection -----
FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from",
        metavar="REV",
        help="First revision to include: step100000, 100000, 1.5T, 800B.",
        autocompletion=complete_revision,
        show_default=False,
    ),
]
ToOpt = Annotated[
    str | None,
    typer.Option(
        "--to",
        metavar="REV",
        help="Last revision to include: step200000, 200000, 2T, 2000B.",
        autocompletion=complete_revision,
        show_default=False,
    ),
]
EveryOpt = Annotated[
    int | None,
    typer.Option("--every", metavar="N", help="Keep revisions whose step is a multiple of N.", show_default=False),
]
LogSpacedOpt = Annotated[
    int | None,
    typer.Option("--log-spaced", metavar="N", help="Keep N revisions spread evenly in log(step).", show_default=False),
]
StageOpt = Annotated[
    int | None,
    typer.Option("--stage", metavar="N", help="Keep revisions of this training stage only.", show_default=False),
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", metavar="N", help="Keep at most N revisions.", show_default=False)
]

# Selection's fields, in the order the options are shown.
_SELECTION_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("start", FromOpt),
    ("end", ToOpt),
    ("every", EveryOpt),
    ("log_spaced", LogSpacedOpt),
    ("stage", StageOpt),
    ("limit", LimitOpt),
)

Command = TypeVar("Command", bound=Callable[..., Any])


def _bundle(
    command: Command,
    name: str,
    options: tuple[tuple[str, Any], ...],
    make: Callable[[dict], Any],
    defaults: dict[str, Any] | None = None,
) -> Command:
    """`command` with the options (name, annotation) in place of its parameter `name`, which receives
    make(their values); an option's default is None unless `defaults` names one."""
    defaults = defaults or {}
    signature = inspect.signature(command, eval_str=True)
    if name not in signature.parameters:
        raise TypeError(f"{command.__name__} has no '{name}' parameter to fill")
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name != name:
            parameters.append(parameter)
            continue
        parameters += [
            inspect.Parameter(option, parameter.kind, default=defaults.get(option), annotation=annotation)
            for option, annotation in options
        ]

    @functools.wraps(command)
    def with_bundle(*args, **kwargs):
        fields = {option: kwargs.pop(option) for option, _ in options}
        return command(*args, **{name: make(fields)}, **kwargs)

    new_signature = signature.replace(parameters=parameters)
    with_bundle.__signature__ = new_signature  # type: ignore[attr-defined]
    with_bundle.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_bundle  # type: ignore[return-value]


def selection_options(command: Command) -> Command:
    """Give a command --from/--to/--every/--log-spaced/--stage/--limit in place of its `selection`
    parameter, which receives them as one checked Selection (a UsageError before any I/O)."""
    return _bundle(command, "selection", _SELECTION_OPTIONS, lambda fields: Selection(**fields))


def selection_options_but_to(command: Command) -> Command:
    """selection_options less --to, for a command whose own --to also names the end of the range
    (convert: `--to gguf --to 2T`); it fills `Selection.end` itself."""
    options = tuple(option for option in _SELECTION_OPTIONS if option[0] != "end")
    return _bundle(command, "selection", options, lambda fields: Selection(**fields))


# ----- executors: where a sweep's units run (one bundle, one ExecutorChoice) -----
_EXECUTOR_OPTIONS: tuple[tuple[str, Any], ...] = (
    (
        "name",
        Annotated[
            str,
            typer.Option(
                "--executor",
                metavar="local|ray|slurm",
                help="Where units run: local (here, in order), ray, slurm (the [cluster] extra).",
            ),
        ],
    ),
    (
        "ray_address",
        Annotated[
            str | None,
            typer.Option(
                "--ray-address",
                metavar="ADDR",
                help="Ray cluster (default: $RAY_ADDRESS, else a local instance).",
                show_default=False,
            ),
        ],
    ),
    (
        "gpus_per_task",
        Annotated[
            float | None,
            typer.Option(
                "--gpus-per-task",
                metavar="N",
                help="Ray: GPUs per unit (default 1 on CUDA, else 0).",
                show_default=False,
            ),
        ],
    ),
    (
        "cpus_per_task",
        Annotated[
            float | None,
            typer.Option("--cpus-per-task", metavar="N", help="Ray: CPUs per unit (default 1).", show_default=False),
        ],
    ),
    (
        "max_retries",
        Annotated[int, typer.Option("--max-retries", metavar="N", help="Ray: retries of a unit whose worker died.")],
    ),
    ("partition", Annotated[str | None, typer.Option("--slurm-partition", metavar="NAME", show_default=False)]),
    (
        "slurm_gpus_per_task",
        Annotated[
            int | None,
            typer.Option(
                "--slurm-gpus-per-task", metavar="N", help="Default 1 on CUDA, else none.", show_default=False
            ),
        ],
    ),
    (
        "slurm_cpus_per_task",
        Annotated[int | None, typer.Option("--slurm-cpus-per-task", metavar="N", show_default=False)],
    ),
    ("mem", Annotated[str | None, typer.Option("--slurm-mem", metavar="SIZE", help="E.g. 64G.", show_default=False)]),
    (
        "time",
        Annotated[
            str | None,
            typer.Option("--slurm-time", metavar="TIME", help="Minutes, H:MM:SS or D-HH:MM:SS.", show_default=False),
        ],
    ),
    (
        "array_parallelism",
        Annotated[
            int | None,
            typer.Option(
                "--slurm-array-parallelism", metavar="N", help="Array tasks running at once.", show_default=False
            ),
        ],
    ),
    ("account", Annotated[str | None, typer.Option("--slurm-account", metavar="NAME", show_default=False)]),
    ("qos", Annotated[str | None, typer.Option("--slurm-qos", metavar="NAME", show_default=False)]),
    (
        "setup",
        Annotated[
            list[str] | None,
            typer.Option(
                "--slurm-setup",
                metavar="LINE",
                help="A shell line run before each job, e.g. 'module load cuda' (repeatable).",
                show_default=False,
            ),
        ],
    ),
    (
        "slurm_logs",
        Annotated[
            Path,
            typer.Option(
                "--slurm-logs",
                metavar="DIR",
                help="Where submitit keeps job scripts, pickles and logs, and the sweep its job ids.",
            ),
        ],
    ),
    (
        "slurm_dry_run",
        Annotated[
            bool,
            typer.Option("--slurm-dry-run", help="Write the sbatch script, print its path, submit nothing."),
        ],
    ),
)
_EXECUTOR_DEFAULTS = {"name": "local", "max_retries": 2, "slurm_logs": Path("olmo-slurm-logs"), "slurm_dry_run": False}
_SLURM_FIELDS = ("partition", "mem", "time", "array_parallelism", "account", "qos")


def _executor_choice(fields: dict) -> Any:
    from olmo_cli.sweeps.choose import ExecutorChoice

    slurm = {name: fields.pop(name) for name in _SLURM_FIELDS}
    slurm["gpus_per_task"] = fields.pop("slurm_gpus_per_task")
    slurm["cpus_per_task"] = fields.pop("slurm_cpus_per_task")
    slurm["setup"] = tuple(fields.pop("setup") or ())
    return ExecutorChoice(**fields, slurm=slurm)


def executor_options(command: Command) -> Command:
    """Give a sweep command --executor and the Ray and SLURM options in place of its `executor`
    parameter, which receives them as one sweeps.choose.ExecutorChoice (nothing of Ray or submitit
    is imported until a command builds a cluster executor)."""
    return _bundle(command, "executor", _EXECUTOR_OPTIONS, _executor_choice, _EXECUTOR_DEFAULTS)
