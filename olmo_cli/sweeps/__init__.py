"""Executors: who runs a sweep's units. `local` runs them here, one after another; `ray` hands one
task per unit to a Ray cluster; `slurm` submits one job array per sweep through submitit.

A unit is plain picklable data and its result lands in a shared store, so the executors only move
(function, unit) pairs to workers and bring back what each returned. Ray and submitit are the
`[cluster]` extra, imported only when chosen.
"""

from __future__ import annotations

from olmo_cli.sweeps.base import EXECUTORS, Executor, Failure, LocalExecutor, require

__all__ = ["EXECUTORS", "Executor", "Failure", "LocalExecutor", "require"]
