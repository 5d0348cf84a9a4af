"""Galaxy Zoo vote fractions turned into classes by a stated rule.

A rule names its classes, the vote-fraction column of each, and a threshold: a galaxy
belongs to a class when that class's fraction is at least the threshold. Galaxies no class
reaches are dropped and counted. The threshold must exceed 0.5, so that at most one class
of one question can pass; a row whose fractions still let two classes pass (fractions of
one question summing above 1) is dropped as ambiguous and counted, never guessed.

Presets (Lintott et al. 2011; Hart et al. 2016):
  gz1_clean            elliptical = P_EL_DEBIASED, spiral = P_CS_DEBIASED, threshold 0.8
                       (GZ1's "clean" sample; "spiral" is GZ1's combined spiral: clockwise,
                       anticlockwise and edge-on)
  gz1_superclean       the same classes at 0.95
  gz2_smooth_features  GZ2 task 01: smooth, features_or_disk, star_or_artifact =
                       t01_smooth_or_features_a0{1,2,3}_..._debiased, threshold 0.8
A user's rule is "name=column;name=column" (`parse_vote_classes`).

Two steps, so that another target kind can reuse the first: `vote_fractions` finds the
columns and checks the values (an (N, K) array in [0, 1]); `classify` applies the threshold.
A vote-fraction regression target would take the fractions from the first step as they are.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from alexnet_jax.data.prepared import TARGET as TARGET_CLASS  # one class per galaxy, the only kind so far
from alexnet_jax.errors import LabelError

MISSING_CHOICES = ("error", "drop")
EMPTY_TEXT = ("", "nan", "null", "none", "--")  # how tables write a missing value


@dataclasses.dataclass(frozen=True)
class VoteClass:
    """One class: its name and the names its vote-fraction column goes by (first found wins).

    `described_by`: words that, all present in a column's description (VizieR's `#Column`
    lines), identify the column when no name matches.
    """

    name: str
    columns: tuple[str, ...]
    described_by: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class VoteRule:
    name: str
    classes: tuple[VoteClass, ...]
    threshold: float = 0.8
    description: str = ""
    target: str = TARGET_CLASS

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def with_threshold(self, threshold: float | None) -> VoteRule:
        return self if threshold is None else dataclasses.replace(self, threshold=float(threshold))

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "target": self.target,
            "threshold": self.threshold,
            "comparison": "fraction >= threshold",
            "description": self.description,
            "classes": [{"name": c.name, "columns": list(c.columns)} for c in self.classes],
        }


_GZ1 = (
    # data.galaxyzoo.org table 2 and SDSS CasJobs zooSpec (p_el_debiased) share these names;
    # VizieR's copy is found by its column descriptions.
    VoteClass("elliptical", ("P_EL_DEBIASED",), ("debiased", "elliptical")),
    VoteClass("spiral", ("P_CS_DEBIASED",), ("debiased", "spiral")),
)
_GZ2_T01 = "t01_smooth_or_features_"
RULES: dict[str, VoteRule] = {
    "gz1_clean": VoteRule("gz1_clean", _GZ1, 0.8, "Galaxy Zoo 1 clean sample: >= 0.8 of the debiased votes"),
    "gz1_superclean": VoteRule(
        "gz1_superclean", _GZ1, 0.95, "Galaxy Zoo 1 superclean sample: >= 0.95 of the debiased votes"
    ),
    "gz2_smooth_features": VoteRule(
        "gz2_smooth_features",
        tuple(
            VoteClass(name, (f"{_GZ2_T01}{answer}_debiased",))
            for name, answer in (
                ("smooth", "a01_smooth"),
                ("features_or_disk", "a02_features_or_disk"),
                ("star_or_artifact", "a03_star_or_artifact"),
            )
        ),
        0.8,
        "Galaxy Zoo 2 task 01 (smooth / features or disk / star or artifact): >= 0.8 of the debiased votes",
    ),
}


def get_rule(name: str) -> VoteRule:
    if name not in RULES:
        raise LabelError(
            f"unknown vote rule {name!r}; use one of {', '.join(RULES)}, or give your own classes "
            "with --vote_classes='name=column;name=column'"
        )
    return RULES[name]


def parse_vote_classes(text: str, threshold: float = 0.8) -> VoteRule:
    """A user's rule from "name=column;name=column" (one column per class)."""
    classes = []
    for part in [p.strip() for p in text.split(";") if p.strip()]:
        name, sep, column = (s.strip() for s in part.partition("="))
        if not sep or not name or not column:
            raise LabelError(f"--vote_classes: {part!r} is not name=column; write e.g. 'smooth=col_a;disk=col_b'")
        classes.append(VoteClass(name, (column,)))
    names = [c.name for c in classes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise LabelError(f"--vote_classes: class {repeated[0]!r} is given more than once")
    if len(classes) < 2:
        raise LabelError(f"--vote_classes={text!r}: a classification needs at least two classes")
    return VoteRule("custom", tuple(classes), float(threshold), "the user's classes and columns")


def check_threshold(threshold: float) -> None:
    if not np.isfinite(threshold) or threshold <= 0.5 or threshold > 1:
        raise LabelError(
            f"vote threshold {threshold:g}: use a value above 0.5 and at most 1 (at 0.5 or below two "
            "classes of one question could both pass; the Galaxy Zoo 1 clean rule uses 0.8)"
        )


def _near(column: str, columns: Sequence[str]) -> list[str]:
    lower = {str(c).lower(): str(c) for c in columns}
    close = difflib.get_close_matches(column.lower(), list(lower), n=5, cutoff=0.6)
    tail = column.lower().rsplit("_", 1)[-1]
    sharing = [c for c in lower if len(tail) > 3 and tail in c and c not in close]
    return [lower[c] for c in close + sharing][:8]


def resolve_columns(
    rule: VoteRule, columns: Sequence[str], source: str, descriptions: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Class name -> the table's column for it; LabelError naming the missing one and near matches."""
    columns = [str(c) for c in columns]
    lower = {c.lower(): c for c in columns}
    found: dict[str, str] = {}
    for vote_class in rule.classes:
        name = next((lower[c.lower()] for c in vote_class.columns if c.lower() in lower), None)
        if name is None and vote_class.described_by and descriptions:
            hits = [
                c
                for c, text in descriptions.items()
                if c in columns and all(word in text.lower() for word in vote_class.described_by)
            ]
            name = hits[0] if len(hits) == 1 else None
        if name is None:
            wanted = vote_class.columns[0]
            near = _near(wanted, columns)
            hint = f"near matches: {', '.join(near)}" if near else f"columns: {', '.join(columns[:40])}"
            raise LabelError(
                f"{source}: no column {wanted!r} for class {vote_class.name!r} of vote rule {rule.name!r} "
                f"({hint}); name the columns with --vote_classes='name=column;...'"
            )
        found[vote_class.name] = name
    by_column: dict[str, str] = {}
    for class_name, column in found.items():
        if column in by_column:
            raise LabelError(
                f"vote rule {rule.name!r}: column {column!r} is given to both {by_column[column]!r} and "
                f"{class_name!r}; give each class its own column"
            )
        by_column[column] = class_name
    return found


@dataclasses.dataclass
class VoteTable:
    """The rule's vote fractions: `fractions[i, k]` for row i and class k (NaN in dropped rows)."""

    columns: dict[str, str]  # class name -> source column
    fractions: np.ndarray  # (N, K) float
    usable: np.ndarray  # (N,) bool: every fraction present (rows without votes are dropped)


def _rows(rows: np.ndarray) -> str:
    """'row 3' or 'rows 2, 5, ... and 7 more' (0-based table rows, as the other catalogue errors)."""
    listed = ", ".join(map(str, rows[:10])) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
    return f"row{'s' if len(rows) > 1 else ''} {listed}"


def vote_fractions(
    table: pd.DataFrame,
    rule: VoteRule,
    source: str,
    *,
    missing: str = "error",
    descriptions: Mapping[str, str] | None = None,
) -> VoteTable:
    """The rule's columns as numbers, checked: each in [0, 1]; empty values refused or dropped."""
    if missing not in MISSING_CHOICES:
        raise LabelError(f"--vote_missing={missing!r}: use {' or '.join(MISSING_CHOICES)}")
    columns = resolve_columns(rule, list(table.columns), source, descriptions)
    values = []
    for class_name, column in columns.items():
        raw = table[column]
        numbers = pd.to_numeric(raw, errors="coerce").to_numpy(float)
        empty = raw.isna().to_numpy() | raw.astype(str).str.strip().str.lower().isin(EMPTY_TEXT).to_numpy()
        unreadable = np.flatnonzero(np.isnan(numbers) & ~empty)
        if len(unreadable):
            raise LabelError(
                f"{source}: column {column!r} (class {class_name!r}) holds {raw.iloc[unreadable[0]]!r}, "
                f"not a number, at {_rows(unreadable)}"
            )
        outside = np.flatnonzero(np.isfinite(numbers) & ((numbers < 0) | (numbers > 1)) | np.isinf(numbers))
        if len(outside):
            raise LabelError(
                f"{source}: column {column!r} (class {class_name!r}) holds vote fractions outside [0, 1] at "
                f"{_rows(outside)} (e.g. {numbers[outside[0]]:g}); these are not fractions of the votes"
            )
        values.append(numbers)
    fractions = np.stack(values, axis=1)
    usable = ~np.isnan(fractions).any(axis=1)
    empty = np.flatnonzero(~usable)
    if len(empty) and missing == "error":
        raise LabelError(
            f"{source}: {len(empty)} of {len(table)} rows lack a value in {' or '.join(map(repr, columns.values()))} "
            f"({_rows(empty)}); fix the table, or pass --vote_missing=drop to drop them (counted in the manifest). "
            "Galaxy Zoo 1 galaxies without SDSS spectra have no debiased fractions."
        )
    return VoteTable(columns=columns, fractions=fractions, usable=usable)


@dataclasses.dataclass
class Classified:
    labels: np.ndarray  # (N,) int64 class index, -1 for a dropped row
    report: dict  # counts for the manifest


def classify(votes: VoteTable, rule: VoteRule, source: str) -> Classified:
    """Labels by the threshold; a class that no galaxy reaches is an error naming it."""
    check_threshold(rule.threshold)
    if not votes.usable.any():
        raise LabelError(f"{source}: no row has all of {', '.join(map(repr, votes.columns.values()))}")
    fractions = np.where(votes.usable[:, None], votes.fractions, -1.0)
    passing = fractions >= rule.threshold
    count = passing.sum(axis=1)
    labels = np.where(count == 1, passing.argmax(axis=1), -1).astype(np.int64)
    per_class = np.bincount(labels[labels >= 0], minlength=len(rule.classes))
    for k, vote_class in enumerate(rule.classes):
        if per_class[k] == 0:
            column = votes.columns[vote_class.name]
            highest = np.nanmax(votes.fractions[votes.usable, k])
            raise LabelError(
                f"{source}: no galaxy reaches {rule.threshold:g} of the votes for class {vote_class.name!r} "
                f"(column {column!r}, highest {highest:.3g}); lower --vote_threshold, or leave the class out "
                "with --vote_classes"
            )
    report = {
        "rows": int(len(labels)),
        "class_counts": {c: int(n) for c, n in zip(rule.class_names, per_class, strict=True)},
        "kept": int((labels >= 0).sum()),
        "dropped": int((labels < 0).sum()),
        "dropped_no_class": int(((count == 0) & votes.usable).sum()),
        "dropped_ambiguous": int((count > 1).sum()),
        "dropped_no_votes": int((~votes.usable).sum()),
        "columns": dict(votes.columns),
    }
    return Classified(labels=labels, report=report)


def report_lines(rule: VoteRule, report: dict) -> list[str]:
    """What the rule did, for the terminal."""
    counts = ", ".join(
        f"{name} {report['class_counts'][name]:,} ({report['columns'][name]})" for name in rule.class_names
    )
    lines = [f"vote rule {rule.name}: a class needs >= {rule.threshold:g} of the votes; kept {counts}"]
    reasons = [
        f"{report['dropped_no_class']:,} reach no class",
        f"{report['dropped_ambiguous']:,} reach two",
        f"{report['dropped_no_votes']:,} have no votes",
    ]
    lines.append(f"dropped {report['dropped']:,} of {report['rows']:,} galaxies ({'; '.join(reasons)})")
    return lines
