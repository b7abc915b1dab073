"""From the command line's --executor options to an executor (none of them imports Ray or submitit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olmo_cli.errors import UsageError
from olmo_cli.sweeps.base import EXECUTORS, Executor, LocalExecutor


def default_gpus(device: str) -> int:
    """One GPU per task when the sweep runs on CUDA (asked for, or `auto` on a machine that has it)."""
    if device.startswith("cuda"):
        return 1
    if device != "auto":
        return 0
    import torch

    return 1 if torch.cuda.is_available() else 0


def build_executor(
    name: str,
    *,
    device: str = "auto",
    ray_address: str | None = None,
    gpus_per_task: float | None = None,
    cpus_per_task: float | None = None,
    max_retries: int = 2,
    slurm_logs: Path | None = None,
    slurm_dry_run: bool = False,
    slurm: dict | None = None,
) -> Executor:
    """`slurm`: SlurmOptions' fields (partition, gpus_per_task, mem ...), None meaning unset."""
    if name not in EXECUTORS:
        raise UsageError(f"unknown executor '{name}'", hint="use " + ", ".join(EXECUTORS))
    if slurm_dry_run and name != "slurm":
        raise UsageError("--slurm-dry-run needs --executor slurm")
    if max_retries < 0:
        raise UsageError("--max-retries must be 0 or more")
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        from olmo_cli.sweeps.ray_executor import RayExecutor

        gpus = default_gpus(device) if gpus_per_task is None else gpus_per_task
        return RayExecutor(ray_address, gpus_per_task=gpus, cpus_per_task=cpus_per_task or 1, max_retries=max_retries)
    from olmo_cli.sweeps.slurm_executor import SlurmExecutor, SlurmOptions

    fields = {k: v for k, v in (slurm or {}).items() if v is not None}
    if "gpus_per_task" not in fields and default_gpus(device):
        fields["gpus_per_task"] = 1
    options = SlurmOptions(logs=slurm_logs or Path("olmo-slurm-logs"), **fields)
    return SlurmExecutor(options, dry_run=slurm_dry_run)


def task_device(device: str, executor: Executor) -> str | None:
    """The device a remote task runs on: `auto` follows the GPUs each task gets; an explicit device
    is the worker's to check (this machine may have none). None: the local executor picks here."""
    if not executor.remote:
        return None
    if device != "auto":
        return device
    return "cuda" if getattr(executor, "gpus", 0) else "cpu"


@dataclass(frozen=True)
class ExecutorChoice:
    """What the --executor options asked for (cli.options.executor_options fills it); `build` makes
    the executor once the command knows its device."""

    name: str = "local"
    ray_address: str | None = None
    gpus_per_task: float | None = None
    cpus_per_task: float | None = None
    max_retries: int = 2
    slurm_logs: Path | None = None
    slurm_dry_run: bool = False
    slurm: dict[str, Any] = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return self.name != "local"

    def build(self, device: str = "auto") -> Executor:
        return build_executor(
            self.name,
            device=device,
            ray_address=self.ray_address,
            gpus_per_task=self.gpus_per_task,
            cpus_per_task=self.cpus_per_task,
            max_retries=self.max_retries,
            slurm_logs=self.slurm_logs,
            slurm_dry_run=self.slurm_dry_run,
            slurm=self.slurm,
        )
