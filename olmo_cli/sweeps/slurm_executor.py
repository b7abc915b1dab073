"""`--executor slurm`: one submitit job array per sweep (`AutoExecutor.map_array`).

The driver waits and reports each job as it finishes; finished rows are in the shared store, so
running the same sweep again submits only what is missing. The driver also records the job id of
each unit it submitted in a small state file (`remember`); a rerun while those jobs are still
pending or running waits on them (submitit job objects re-created from the log folder and the id)
instead of submitting them again. --slurm-dry-run writes
the sbatch script submitit would submit and submits nothing. Only that script's text comes from a
private submitit function (`submitit.slurm.slurm._make_sbatch_string`, the one its SlurmExecutor
uses): submitit has no public way to render a script without `sbatch` on the PATH.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from olmo_cli.errors import UnsupportedError, UsageError, first_line
from olmo_cli.sweeps.base import Failure, check_writable_here, require

POLL_SECONDS = 2.0


@dataclass(frozen=True)
class SlurmOptions:
    logs: Path
    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None  # 64G, 500M, 1T (sbatch's units)
    time: str | None = None  # minutes, H:MM:SS or D-HH:MM:SS
    array_parallelism: int | None = None
    account: str | None = None
    qos: str | None = None
    setup: tuple[str, ...] = field(default_factory=tuple)

    def sbatch(self) -> dict[str, Any]:
        """The sbatch settings, under the names submitit's SlurmExecutor takes."""
        out: dict[str, Any] = {
            "job_name": "olmo-sweep",
            "partition": self.partition,
            "gpus_per_task": self.gpus_per_task,
            "cpus_per_task": self.cpus_per_task,
            "mem": _mem(self.mem),
            "time": _minutes(self.time),
            "array_parallelism": self.array_parallelism,
            "account": self.account,
            "qos": self.qos,
            "setup": list(self.setup) or None,
        }
        return {k: v for k, v in out.items() if v is not None}


def _mem(text: str | None) -> str | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"--slurm-mem '{text}' is not a size", hint="use e.g. 64G or 500M")
    return f"{match.group(1)}{(match.group(2) or 'M').upper()}B"


def _minutes(text: str | None) -> int | None:
    """sbatch --time forms -> minutes (submitit sets its own timeout from it, so it must be a number)."""
    if text is None:
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise UsageError(f"--slurm-time '{text}' is not a duration", hint="use minutes, H:MM:SS or D-HH:MM:SS")
    days, *parts = match.groups()
    numbers = [int(p) for p in parts if p is not None]
    if days is not None:  # days-hours, days-hours:minutes, days-hours:minutes:seconds
        hours, minutes, seconds = [*numbers, 0, 0][:3]
    elif len(numbers) == 3:  # hours:minutes:seconds
        hours, minutes, seconds = numbers
    else:  # minutes, minutes:seconds
        hours, minutes, seconds = 0, numbers[0], (numbers[1] if len(numbers) > 1 else 0)
    return int(days or 0) * 24 * 60 + hours * 60 + minutes + (1 if seconds else 0)  # seconds round up


class SlurmExecutor:
    name = "slurm"
    remote = True

    def __init__(self, options: SlurmOptions, *, dry_run: bool = False, cluster: str = "slurm"):
        self.options, self.dry_run, self.cluster = (
            options,
            dry_run,
            cluster,
        )  # cluster="local": submitit's LocalExecutor
        self.options.sbatch()  # bad --slurm-mem / --slurm-time fail before anything is planned
        self.script: Path | None = None
        self.journal: JobJournal | None = None
        self.keys: list[str] = []
        self.attached = 0  # jobs of an earlier run of the sweep waited on instead of submitted

    def remember(self, state: Path, keys: Sequence[str]) -> None:
        """Record the jobs of the next `map` in `state` under `keys` (one per item, stable across
        runs), and wait on the ones an earlier run recorded there that are still in flight."""
        self.journal, self.keys = JobJournal(state), list(keys)

    @property
    def gpus(self) -> int:
        return self.options.gpus_per_task or 0

    def check_shared(self, paths: dict[str, Path]) -> None:
        # Jobs run later on other nodes; all that can be checked from here is that the paths are real
        # and writable. They must be on a filesystem the compute nodes mount (README).
        check_writable_here({**paths, "log folder": self.options.logs})

    def write_script(self, count: int) -> Path:
        """The sbatch script of an array of `count` units, as submitit would write it."""
        submitit_slurm = require("submitit.slurm.slurm", "slurm")
        folder = self.options.logs.absolute() / "%j"
        command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
        text = submitit_slurm._make_sbatch_string(
            command=command, folder=folder, map_count=count, **self.options.sbatch()
        )
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = self.options.logs / f"olmo-sweep-{stamp}.sbatch"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.script = path
        return path

    def _executor(self):
        submitit = require("submitit", "slurm")
        try:
            executor = submitit.AutoExecutor(folder=self.options.logs.absolute() / "%j", cluster=self.cluster)
        except RuntimeError as error:  # no srun on the PATH
            raise UnsupportedError(
                f"cannot submit to SLURM here: {str(error).splitlines()[0]}",
                hint="run on a SLURM login node, or write the script with --slurm-dry-run",
            ) from None
        sbatch = self.options.sbatch()
        generic = {"timeout_min": sbatch.pop("time", None), "cpus_per_task": sbatch.pop("cpus_per_task", None)}
        mem = sbatch.pop("mem", None)
        if mem is not None:  # submitit wants GB as a number
            value, unit = int(mem[:-2]), mem[-2]
            generic["mem_gb"] = value * {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1, "T": 1024}[unit]
        executor.update_parameters(
            name=sbatch.pop("job_name"),
            **{k: v for k, v in generic.items() if v is not None},
            **{f"slurm_{k}": v for k, v in sbatch.items()},
        )
        return executor

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not items:
            return
        if self.dry_run:  # a driver that forgot to check: never submit what was asked to be written only
            raise UsageError("--slurm-dry-run submits nothing", hint="drop --slurm-dry-run to submit")
        journal, keys = (self.journal, self.keys) if self.journal and len(self.keys) == len(items) else (None, [])
        pending: dict[int, Any] = {}
        if journal is not None:
            recorded = journal.read()
            for i, key in enumerate(keys):
                job = self._reattach(recorded[key]) if key in recorded else None
                if job is not None:
                    pending[i] = job
        self.attached = len(pending)
        fresh = [i for i in range(len(items)) if i not in pending]
        if fresh:
            jobs = self._executor().map_array(fn, [items[i] for i in fresh])
            pending.update(zip(fresh, jobs, strict=True))
            if journal is not None:
                folder = str(self.options.logs.absolute() / "%j")
                journal.update({keys[i]: {"job_id": job.job_id, "folder": folder, "cluster": self.cluster}
                                for i, job in zip(fresh, jobs, strict=True)})  # fmt: skip
        try:
            while pending:
                finished = [i for i, job in pending.items() if job.done()]
                for i in finished:
                    job = pending.pop(i)
                    if journal is not None:
                        journal.update({keys[i]: None})
                    try:
                        result = job.result()
                    except Exception as error:  # the job failed, timed out or was cancelled
                        result = Failure(f"SLURM job {job.job_id} failed: {first_line(error)}")
                    yield i, result
                if pending and not finished:
                    time.sleep(POLL_SECONDS)
        finally:
            for job in pending.values():  # Ctrl-C: cancel what has not run; finished rows are stored
                try:
                    job.cancel(check=False)
                except Exception:
                    pass
            if journal is not None and pending:
                journal.update({keys[i]: None for i in pending})

    def _reattach(self, entry: dict) -> Any:
        """The recorded job, re-created from its log folder and id, when it finished with a result or
        is still pending or running; None when it must be submitted again (it failed, was cancelled,
        or is a local job whose process this driver cannot follow)."""
        submitit = require("submitit", "slurm")
        try:
            if entry.get("cluster") == "slurm":
                job = submitit.SlurmJob(folder=entry["folder"], job_id=str(entry["job_id"]))
            else:
                job = submitit.LocalJob(folder=entry["folder"], job_id=str(entry["job_id"]))
        except (KeyError, TypeError, ValueError):  # a hand-edited or foreign state file
            return None
        if job.paths.result_pickle.exists():
            return job
        if entry.get("cluster") != "slurm":
            return None
        return job if not job.done() else None


class JobJournal:
    """The SLURM jobs a sweep submitted, by unit key: a JSON file beside the sweep's results, rewritten
    atomically; it is removed once no job is in flight."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.get("jobs", {}).items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def update(self, changes: dict[str, dict | None]) -> None:
        """Set each key's entry; None forgets it."""
        jobs = self.read()
        for key, entry in changes.items():
            if entry is None:
                jobs.pop(key, None)
            else:
                jobs[key] = entry
        if not jobs:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"jobs": jobs}, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
