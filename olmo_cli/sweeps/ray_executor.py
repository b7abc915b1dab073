"""`--executor ray`: one Ray task per unit, retried when its worker dies.

Connects to --ray-address, else RAY_ADDRESS, else starts a local instance sized to the machine
(an instance this process already started, e.g. by a test, is reused). Workers must have olmo
installed and see the HF cache and the results store at the same paths as the driver.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from olmo_cli.errors import BadInputError, NetworkError, first_line
from olmo_cli.sweeps.base import Failure, check_writable_here, require


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def _unseen(probes: dict[str, str]) -> list[str]:
    """On a worker: the probe files it cannot read back (their paths)."""
    missing = []
    for path, token in probes.items():
        try:
            if Path(path).read_text(encoding="utf-8") != token:
                missing.append(path)
        except OSError:
            missing.append(path)
    return missing


class RayExecutor:
    name = "ray"
    remote = True

    def __init__(
        self,
        address: str | None = None,
        *,
        gpus_per_task: float = 0,
        cpus_per_task: float = 1,
        max_retries: int = 2,
    ):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.gpus_per_task, self.cpus_per_task, self.max_retries = gpus_per_task, cpus_per_task, max_retries
        self._ray: Any = None

    @property
    def gpus(self) -> float:
        return self.gpus_per_task

    def _start(self):
        if self._ray is not None:
            return self._ray
        ray = require("ray", "ray")
        if not ray.is_initialized():
            try:
                # No address: a local instance sized to the machine. Worker logs stay in Ray's log
                # folder: they would fight the sweep's progress bar.
                ray.init(address=self.address, log_to_driver=False, include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise NetworkError(
                    f"cannot connect to Ray at {self.address or 'a new local instance'}: {str(error).splitlines()[0]}",
                    hint="check --ray-address / RAY_ADDRESS (ray://host:10001 or host:6379)",
                ) from None
        self._ray = ray
        return ray

    def check_shared(self, paths: dict[str, Path]) -> None:
        """Writes a probe file into each path here, and asks a worker to read each back."""
        check_writable_here(paths)
        ray = self._start()
        named: dict[str, tuple[str, Path]] = {}  # probe file -> (what, path)
        tokens: dict[str, str] = {}
        try:
            for what, path in paths.items():
                probe = path / f".olmo-probe-{uuid.uuid4().hex}"
                tokens[str(probe)] = uuid.uuid4().hex
                named[str(probe)] = (what, path)
                probe.write_text(tokens[str(probe)], encoding="utf-8")
            task = ray.remote(_unseen).options(num_cpus=0, max_retries=self.max_retries)
            unseen = ray.get(task.remote(tokens))
        finally:
            for name in named:
                Path(name).unlink(missing_ok=True)
        if unseen:
            what, where = named[unseen[0]]
            raise BadInputError(
                f"a Ray worker cannot see the {what} {where}",
                hint="put the HF cache (HF_HUB_CACHE) and --results on a filesystem every node mounts at the same path",
            )

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        ray = self._start()
        task = ray.remote(_call).options(
            num_cpus=self.cpus_per_task,
            num_gpus=self.gpus_per_task,
            max_retries=self.max_retries,  # worker death only: an exception in fn is its result
            retry_exceptions=False,
        )
        fn_ref = ray.put(fn)
        index = {task.remote(fn_ref, item): i for i, item in enumerate(items)}
        pending = list(index)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ref = done[0]
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as error:  # fn raised (a bug: units report their errors)
                    result = Failure(f"its Ray task raised {first_line(error.cause or error)}")
                except ray.exceptions.RayError as error:  # the worker or its node died on every try
                    result = Failure(f"its Ray task failed after {self.max_retries + 1} tries: {first_line(error)}")
                yield index[ref], result
        finally:
            for ref in pending:  # Ctrl-C, or the caller stopped early: finished rows are stored already
                ray.cancel(ref, force=True)
