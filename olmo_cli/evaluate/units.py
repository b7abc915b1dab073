"""Units of work: (model, resolved commit, job settings), as plain picklable data.

A unit holds everything needed to compute its rows anywhere (`run.run_unit`), and names the rows
it will produce by their keys in the results store, so a unit whose rows all exist is not run.
"""

from __future__ import annotations

from dataclasses import dataclass

from olmo_cli.evaluate.data import DataSource
from olmo_cli.evaluate.store import model_folder, row_key
from olmo_cli.evaluate.tasks import TaskSpec

CHECKPOINT_DTYPE = "checkpoint"  # the dtype the checkpoint was saved in
MAX_DEFAULT_CONTEXT = 2048


@dataclass(frozen=True)
class Settings:
    """How a model is scored. Requested values, not resolved ones: the default context and dtype
    follow from the commit, so keys can be checked without the weights."""

    dtype: str = CHECKPOINT_DTYPE  # checkpoint, float32, bfloat16, float16
    device: str = "cpu"  # where to run: cpu, cuda, cuda:1, mps (only its type is part of the key)
    context: int | None = None  # None: the model's maximum, capped at MAX_DEFAULT_CONTEXT
    stride: int | None = None
    batch_size: int = 1  # not part of the key: it changes speed, not results

    @property
    def key(self) -> dict:
        device_type = self.device.split(":")[0]
        return {"dtype": self.dtype, "device": device_type, "context": self.context, "stride": self.stride}


@dataclass(frozen=True)
class Unit:
    model: str  # Hub repo id, or a local directory's absolute path
    revision: str | None  # None for a local directory
    commit: str  # the Hub commit sha, or a local directory's fingerprint
    step: int | None
    tokens: int | None
    settings: Settings
    data: tuple[DataSource, ...] = ()
    tasks: tuple[TaskSpec, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.revision is None

    @property
    def folder(self) -> str:
        return model_folder(self.model, self.is_local)

    @property
    def label(self) -> str:
        return self.model if self.is_local else f"{self.model}@{self.revision}"

    def measurements(self) -> list[DataSource | TaskSpec]:
        return [*self.data, *self.tasks]

    def key(self, measurement: DataSource | TaskSpec) -> str:
        fields = {
            "model": "local" if self.is_local else self.model,
            "commit": self.commit,
            "settings": self.settings.key,
            "data": measurement.key if isinstance(measurement, DataSource) else None,
            "task": measurement.key if isinstance(measurement, TaskSpec) else None,
        }
        return row_key(fields)

    def base_row(self) -> dict:
        """The row fields that name the revision (the same for each of its measurements)."""
        return {
            "model": self.model,
            "revision": self.revision,
            "step": self.step,
            "tokens": self.tokens,
            "commit": self.commit,
        }


def empty_row(unit: Unit, measurement: DataSource | TaskSpec, *, error: str | None = None) -> dict:
    """A row with every field present; the measurement fills in the numbers."""
    row = {
        **unit.base_row(),
        "data": measurement.as_json() if isinstance(measurement, DataSource) else None,
        "loss": None,
        "perplexity": None,
        "bits_per_byte": None,
        "n_tokens": None,
        "n_bytes": None,
        "seconds": None,
        "cached": False,
        "error": error,
    }
    if isinstance(measurement, TaskSpec):
        row.update(task=measurement.name, metrics=None)
    return row
