"""One arm of one run while it trains: its results record, history, best epoch and log lines.

`RunRecord` is a run's results.json, read under the run's lock and checked against the
config; `Member` is one arm of it. Neither touches a device: the trainer hands them the
numbers it read, and they decide what is a new best and what gets written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np

from alexnet_jax import results as results_lib
from alexnet_jax import seeds
from alexnet_jax.data.labels import CLASS_NAMES
from alexnet_jax.errors import TrainingError
from alexnet_jax.toolbox import format_duration, write_json_atomic
from alexnet_jax.training.arms import ArmSpec
from alexnet_jax.training.plan import Plan
from alexnet_jax.training.rundata import RunData
from alexnet_jax.training.rundir import config_fingerprint, fingerprint_differences

HISTORY_KEYS = ("train_acc", "train_loss", "test_acc", "test_loss", "val_acc", "val_loss", "epoch_seconds")
TIME_KEYS = ("wall_s", "compile_s", "train_s", "eval_s", "checkpoint_s", "other_s")


class RunRecord:
    """A run's results.json: its split, its data set, its config, and one entry per arm."""

    def __init__(self, plan: Plan, run_index: int, data: RunData):
        """Holds no results until `load()` (a constructor touches no file)."""
        self.plan = plan
        self.index = run_index
        self.dir = results_lib.run_dir(plan.workdir, run_index)
        self.data = data
        self.path = self.dir / results_lib.RESULTS_FILENAME
        self.results: dict = {}

    @classmethod
    def load(cls, plan: Plan, run_index: int, data: RunData) -> RunRecord:
        """The run's record: its results.json, checked against the plan's config, or a new one."""
        record = cls(plan, run_index, data)
        record.results = record._read() if record.path.exists() else record._new()
        return record

    def _read(self) -> dict:
        existing = results_lib.load_results(self.path)
        self.check_classes(existing.get("class_names"), self.path)
        differences = fingerprint_differences(
            config_fingerprint(self.plan.config), config_fingerprint(existing["config"])
        )
        if differences:
            raise TrainingError(
                f"{self.path} was made with another config; resuming would mix two protocols. "
                f"Differences: {'; '.join(differences)}. Use another --workdir, or delete {self.dir} to start over."
            )
        self._check_label_budget(existing.get("label_budget"))
        return existing

    def _check_label_budget(self, recorded: dict | None) -> None:
        """A label-efficiency run resumes only on the subset and budget it started with: the data
        directory is no part of the fingerprint, and another data set gives another pool."""
        ours = self.data.label_budget
        keys = ("size", "pool_size", "subset_seed", "train_counts", "val_counts", "budget")
        differ = [k for k in keys if (recorded or {}).get(k) != (ours or {}).get(k)]
        if (recorded is None) == (ours is None) and not differ:
            return
        raise TrainingError(
            f"{self.path} records another label-efficiency subset or budget than this data set gives run "
            f"{self.index} ({', '.join(differ) or 'label_budget'} differ); resuming would mix two subsets. "
            f"Use another --workdir, or delete {self.dir} to start over."
        )

    def _new(self) -> dict:
        names = self.class_names
        data = self.data

        def counts(idx):
            return np.bincount(data.labels[idx], minlength=len(names)).tolist()

        split = {
            "protocol": self.plan.data.split,
            "train_size": int(len(data.train_idx)),
            "test_size": int(len(data.test_idx)),
            "train_counts": counts(data.train_idx),
            "test_counts": counts(data.test_idx),
            "test_indices": data.test_idx.tolist(),
            "test_labels": data.labels[data.test_idx].tolist(),
        }
        if data.val_idx is not None:
            split["val_counts"] = counts(data.val_idx)
        keys = ("name", "source", "num_examples", "class_counts", "generator", "sha256")
        results = {
            "schema": results_lib.SCHEMA,
            "run_index": self.index,
            "class_names": names,
            "split": split,
            "data": {k: data.manifest.get(k) for k in keys},
            "arms": {},
            "config": json.loads(json.dumps(self.plan.config)),
        }
        if self.plan.config_file:
            results["config_file"] = self.plan.config_file
        if data.label_budget is not None:
            results["label_budget"] = json.loads(json.dumps(data.label_budget))
        return results

    @property
    def class_names(self) -> list[str]:
        return list(self.data.manifest.get("class_names") or CLASS_NAMES)

    def check_classes(self, recorded: list[str] | None, where: Path) -> None:
        """Refuse to go on with a run (results.json, a checkpoint) made on other classes, or the same in
        another order: the data directory is no part of the config's fingerprint. None: not recorded."""
        if recorded is None or list(recorded) == self.class_names:
            return
        raise TrainingError(
            f"{where} records a run on the classes {list(recorded)}, but the data set {self.plan.data.dir} has "
            f"{self.class_names}; resuming would mix two data sets. Use another --workdir, or delete {self.dir} "
            "to start over."
        )

    def complete(self, arm: str) -> bool:
        return results_lib.is_complete(self.results, arm)

    def write(self, writer) -> None:
        """Queue results.json as it stands now (process 0 only: one writer per run)."""
        if jax.process_index() == 0:
            writer.submit(write_json_atomic, self.path, json.loads(json.dumps(self.results)))


class Member:
    """One arm of one run in training: what it has done, its best epoch, and what it writes."""

    def __init__(self, run: RunRecord, spec: ArmSpec, plan: Plan):
        self.run = run
        self.spec = spec
        self.plan = plan
        self.arm_dir = run.dir / spec.name
        self.key = seeds.arm_key(plan.seed, run.index, spec.id)
        self.selection = plan.selection
        self.history = {k: [] for k in HISTORY_KEYS}
        self.best = {"epoch": -1, "confusion": None, "predictions": None}
        self.time = dict.fromkeys(TIME_KEYS, 0.0)
        self.position = (0, 0)  # (epoch, step) the next train step starts from
        self.partial = None  # the epoch's train totals so far, when resumed mid-epoch
        self.provenance: dict = {}
        self.extra: dict = {}  # pipeline, devices, parameter counts, packing

    @property
    def label(self) -> str:
        return f"run {self.run.index:03d} [{self.spec.name}]"

    @property
    def epochs_done(self) -> int:
        return len(self.history["test_acc"])

    # ---- checkpoints
    def meta(self, global_step: int, position: tuple[int, int], partial: dict | None) -> dict:
        """The JSON half of a checkpoint: where the arm stands and everything it has recorded."""
        return {
            "global_step": int(global_step),
            "position": {"epoch": position[0], "step": position[1]},
            "partial": partial,
            "history": self.history,
            "best": self.best,
            "time": self.time,
            "provenance": self.provenance,
            "class_names": self.run.class_names,
        }

    def resume_from(self, meta: dict) -> None:
        self.history = {k: list(meta["history"].get(k, [])) for k in HISTORY_KEYS}
        self.best = dict(meta["best"])
        self.time = {k: float(meta["time"].get(k, 0.0)) for k in TIME_KEYS}
        self.position = (int(meta["position"]["epoch"]), int(meta["position"]["step"]))
        self.partial = meta.get("partial")
        self.provenance = meta.get("provenance") or self.provenance

    # ---- epochs
    def add_epoch(self, train: dict, test: dict, val: dict | None, seconds: float) -> bool:
        """Record a finished epoch from its host totals; True if it is the new best epoch."""
        h = self.history
        h["train_loss"].append(float(train["loss_sum"]) / float(train["count"]))
        h["train_acc"].append(float(train["correct"]) / float(train["count"]))
        h["test_loss"].append(float(test["loss_sum"]) / float(test["count"]))
        h["test_acc"].append(float(test["correct"]) / float(test["count"]))
        if val is not None:
            h["val_loss"].append(float(val["loss_sum"]) / float(val["count"]))
            h["val_acc"].append(float(val["correct"]) / float(val["count"]))
        h["epoch_seconds"].append(round(seconds, 4))
        selected = h["val_acc"] if self.selection == "val" else h["test_acc"]
        epoch = len(selected) - 1
        if int(np.argmax(selected)) != epoch:  # the first maximum, as the paper
            return False
        self.best = {"epoch": epoch, "confusion": np.rint(test["confusion"]).astype(int).tolist(), "predictions": None}
        return True

    def record(self, complete: bool) -> dict:
        """The arm's results.json entry (schema in alexnet_jax.results)."""
        h, done = self.history, self.epochs_done
        wall = self.time["wall_s"]
        entry = {
            "epochs": self.spec.epochs,
            "complete": complete,
            "selection": self.selection,
            "init": self.provenance,
            "spec": {**self.spec.record(), "model": self.plan.model.name},
            "input_normalization": self.plan.data.input_normalization,
            **self.extra,
            **{k: h[k] for k in ("train_acc", "test_acc", "train_loss", "test_loss")},
            "best_epoch": self.best["epoch"],
            "best_test_acc": h["test_acc"][self.best["epoch"]] if done else None,
            "confusion_matrix": self.best["confusion"] or [],
            "test_predictions": self.best["predictions"] or [],
            "train_images_per_epoch": int(len(self.run.data.train_idx)),
            "epoch_seconds": h["epoch_seconds"],
            "time": {k: round(v, 3) for k, v in self.time.items()},
            "wall_time_s": round(wall, 3),
            "images_per_s": round(done * len(self.run.data.train_idx) / wall, 2) if wall else None,
        }
        if self.selection == "val":
            entry["val_acc"], entry["val_loss"] = h["val_acc"], h["val_loss"]
        return entry

    def publish(self, writer, complete: bool) -> None:
        self.run.results["arms"][self.spec.name] = self.record(complete)
        self.run.write(writer)

    def report_epoch(self, log, phases: dict, remaining_epochs: int) -> dict:
        """Log the epoch's progress line; return its metrics.jsonl row (with its seconds by phase)."""
        h = {k: v[-1] for k, v in self.history.items() if v}
        seconds = h["epoch_seconds"]
        images_per_s = len(self.run.data.train_idx) / seconds if seconds else 0.0
        done = self.history["epoch_seconds"]
        eta = sum(done[-5:]) / len(done[-5:]) * remaining_epochs
        log(
            f"{self.label:<22} epoch {self.epochs_done:3d}/{self.spec.epochs}  "
            f"train loss {h['train_loss']:.4f} acc {h['train_acc']:.4f} | test loss {h['test_loss']:.4f} "
            f"acc {h['test_acc']:.4f}"
            + (f" | val acc {h['val_acc']:.4f}" if "val_acc" in h else "")
            + f" | {images_per_s:,.0f} img/s | ETA {format_duration(eta)}"
        )
        return {"epoch": self.epochs_done - 1, **h, "images_per_s": images_per_s, "seconds": phases}

    def best_metadata(self) -> dict:
        """What `best/`'s metadata.json says about the params it holds."""
        h = self.history
        return {
            "run_index": self.run.index,
            "arm": self.spec.name,
            "model": self.plan.model.name,
            "epoch": self.best["epoch"],
            "selection": self.selection,
            "test_acc": h["test_acc"][self.best["epoch"]],
            "num_classes": self.plan.model.num_classes,
            "class_names": self.run.class_names,
            "config": json.loads(json.dumps(self.plan.config)),
        }


def append_metrics(path: Path, row: dict, tensorboard) -> None:
    """metrics.jsonl and TensorBoard (run on the background writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    if tensorboard is not None:
        for name, value in row.items():
            if isinstance(value, float):
                tensorboard.add_scalar(name, value, row["epoch"])


def tensorboard_writer(directory: Path):
    """A TensorBoard writer, or None without tensorboardX (logs are a convenience, never a reason to fail).

    tensorboardX imports torch when it can, only to recognise torch tensors; we log Python floats,
    so torch (seconds and ~0.5 GB per training process) is hidden from that import."""
    hide_torch = "torch" not in sys.modules
    if hide_torch:
        sys.modules["torch"] = None  # `import torch` raises ImportError, which tensorboardX handles
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return None
    finally:
        if hide_torch:
            del sys.modules["torch"]
    return SummaryWriter(str(directory))
