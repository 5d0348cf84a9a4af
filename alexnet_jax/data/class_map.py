"""Catalogue values -> classes: the user's mapping, given on the command line or in a file.

Text form, one class per `;` or line, in label order:

    elliptical=-5; lenticular=-3..0; spiral=1..9; irr_misc=10,99
    early = E, S0; late = Sa, Sb, Sc, Sd

Each class lists values separated by commas. A value is a number (compared as a number, so
`1` matches `1.0`), `lo..hi` (an inclusive numeric range; either end may be left open: `..0`,
`10..`) or text (compared without surrounding spaces and without case). A file holds the same
text (`#` starts a comment), or JSON: {"early": ["E", "S0"], "late": ["1..9"]}.

A value in two classes is refused, as is a range that overlaps another class's. Rows whose
value is in no class are dropped and counted (`unmapped="drop"`) or refused ("fail").
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np

from alexnet_jax.errors import LabelError

UNMAPPED_CHOICES = ("drop", "fail")
_NAME_FORBIDDEN = ",;=\n\r\t"


@dataclasses.dataclass(frozen=True)
class _Range:
    low: float
    high: float

    def __str__(self) -> str:
        ends = ["" if math.isinf(v) else f"{v:g}" for v in (self.low, self.high)]
        return f"{ends[0]}..{ends[1]}"


@dataclasses.dataclass(frozen=True)
class ClassMap:
    """An ordered list of classes, each with the catalogue values that belong to it."""

    class_names: tuple[str, ...]
    numbers: tuple[frozenset, ...]  # per class: exact numeric values
    ranges: tuple[tuple[_Range, ...], ...]  # per class: inclusive numeric ranges
    texts: tuple[frozenset, ...]  # per class: casefolded text values
    origin: str  # where the mapping came from, for messages and the manifest

    def describe(self) -> dict[str, list[str]]:
        """The mapping as written back out: class -> values (the manifest records it)."""
        out = {}
        for k, name in enumerate(self.class_names):
            values = [f"{v:g}" for v in sorted(self.numbers[k])] + [str(r) for r in self.ranges[k]]
            out[name] = values + sorted(self.texts[k])
        return out

    def class_of(self, value) -> int:
        """The class index of one catalogue value, or -1 when no class holds it."""
        number = _as_number(value)
        if number is not None:
            for k in range(len(self.class_names)):
                if number in self.numbers[k] or any(r.low <= number <= r.high for r in self.ranges[k]):
                    return k
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return -1
        text = str(value).strip().casefold()
        for k, texts in enumerate(self.texts):
            if text in texts:
                return k
        return -1

    def assign(self, values, *, source: str, column: str, unmapped: str = "drop") -> tuple[np.ndarray, dict]:
        """(labels with -1 for unmapped rows, report) for a column of catalogue values.

        The report counts rows per class and the unmapped values; `unmapped="fail"` raises
        LabelError naming those values and their first rows instead.
        """
        if unmapped not in UNMAPPED_CHOICES:
            raise LabelError(f"unmapped must be one of {', '.join(UNMAPPED_CHOICES)}, got {unmapped!r}")
        values = list(values)
        labels = np.fromiter((self.class_of(v) for v in values), np.int64, len(values))
        missing = np.flatnonzero(labels < 0)
        by_value = Counter(_display(values[i]) for i in missing)
        if len(missing) and unmapped == "fail":
            first = {}
            for i in missing:
                first.setdefault(_display(values[i]), []).append(int(i))
            shown = "; ".join(f"{v!s} ({len(rows)} rows, first row {rows[0]})" for v, rows in list(first.items())[:8])
            more = f" and {len(first) - 8} more values" if len(first) > 8 else ""
            raise LabelError(
                f"{source}: column {column!r} holds values in no class of {self.origin}: {shown}{more}. "
                "Add them to a class, or pass --unmapped=drop to drop those rows (they are counted)."
            )
        counts = np.bincount(labels[labels >= 0], minlength=len(self.class_names))
        report = {
            "column": column,
            "mapping": self.describe(),
            "class_counts": dict(zip(self.class_names, map(int, counts), strict=True)),
            "unmapped_rows": int(len(missing)),
            "unmapped_values": dict(by_value.most_common(20)),
        }
        empty = [n for n, c in zip(self.class_names, counts, strict=True) if c == 0]
        if empty:
            raise LabelError(
                f"{source}: no row of column {column!r} falls in class(es) {', '.join(map(repr, empty))} "
                f"of {self.origin}; fix their values or leave those classes out"
            )
        return labels, report


def _as_number(value) -> float | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _display(value) -> str:
    number = _as_number(value)
    if number is not None:
        return f"{number:g}"
    if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
        return "empty"
    return repr(str(value).strip())


def _parse_value(text: str, where: str) -> float | _Range | str:
    if ".." in text:
        low_text, _, high_text = text.partition("..")
        try:
            low = float(low_text) if low_text.strip() else -math.inf
            high = float(high_text) if high_text.strip() else math.inf
        except ValueError:
            raise LabelError(f"{where}: {text!r} is not a numeric range; write it as LOW..HIGH, e.g. -3..0") from None
        if low > high:
            raise LabelError(f"{where}: range {text!r} runs backwards; write it as {high_text}..{low_text}")
        return _Range(low, high)
    number = _as_number(text)
    return number if number is not None else text.strip().casefold()


def _from_entries(entries: list[tuple[str, list[str]]], origin: str) -> ClassMap:
    names, numbers, ranges, texts = [], [], [], []
    owner: dict = {}  # value -> class, to refuse one value in two classes
    for name, raw_values in entries:
        where = f"{origin}, class {name!r}"
        if not name or any(ch in name for ch in _NAME_FORBIDDEN) or name != name.strip():
            raise LabelError(f"{origin}: class name {name!r} is empty or holds ',', ';', '=' or a line break")
        if name in names:
            raise LabelError(f"{origin}: class {name!r} is given twice; list all its values in one entry")
        values = [v.strip() for v in raw_values if v.strip()]
        if not values:
            raise LabelError(f"{where}: no values; write {name}=VALUE[,VALUE...]")
        nums, rngs, txts = set(), [], set()
        for value in values:
            parsed = _parse_value(value, where)
            key = parsed if not isinstance(parsed, _Range) else None
            if key is not None and key in owner and owner[key] != name:
                raise LabelError(
                    f"{origin}: value {value!r} is in two classes, {owner[key]!r} and {name!r}; keep it in one"
                )
            if isinstance(parsed, _Range):
                rngs.append(parsed)
            elif isinstance(parsed, float):
                nums.add(parsed)
                owner[parsed] = name
            else:
                txts.add(parsed)
                owner[parsed] = name
        names.append(name)
        numbers.append(frozenset(nums))
        ranges.append(tuple(rngs))
        texts.append(frozenset(txts))
    if len(names) < 2:
        raise LabelError(f"{origin}: a classification needs at least two classes, got {names}")
    _refuse_overlaps(names, numbers, ranges, origin)
    return ClassMap(tuple(names), tuple(numbers), tuple(ranges), tuple(texts), origin)


def _refuse_overlaps(names, numbers, ranges, origin) -> None:
    for a in range(len(names)):
        for b in range(len(names)):
            if a == b:
                continue
            for r in ranges[a]:
                inside = sorted(v for v in numbers[b] if r.low <= v <= r.high)
                if inside:
                    raise LabelError(
                        f"{origin}: value {inside[0]:g} of class {names[b]!r} lies in range {r} of class "
                        f"{names[a]!r}; keep each value in one class"
                    )
                if b > a:
                    for s in ranges[b]:
                        if max(r.low, s.low) <= min(r.high, s.high):
                            raise LabelError(
                                f"{origin}: range {r} of class {names[a]!r} overlaps range {s} of class "
                                f"{names[b]!r}; keep each value in one class"
                            )


def parse_class_map(text: str, origin: str = "--class_map") -> ClassMap:
    """A ClassMap from its text form (see the module docstring)."""
    entries = []
    for line_number, raw in enumerate(text.replace(";", "\n").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, equals, values = line.partition("=")
        if not equals:
            raise LabelError(f"{origin}: {line!r} has no '='; write CLASS=VALUE[,VALUE...] (entry {line_number})")
        entries.append((name.strip(), values.split(",")))
    return _from_entries(entries, origin)


def load_class_map(spec: str) -> ClassMap:
    """A ClassMap from the text form, or from a file (text or JSON) when `spec` names one."""
    path = Path(spec)
    if "=" not in spec and (path.suffix.lower() in (".json", ".txt", ".map") or os.path.sep in spec or path.exists()):
        if not path.is_file():
            raise LabelError(f"class map file {spec} does not exist; give a file or CLASS=VALUES;CLASS=VALUES")
        text = path.read_text()
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise LabelError(f"{path}: not valid JSON ({error})") from None
            if not isinstance(data, dict):
                raise LabelError(f'{path}: JSON must map class names to value lists, e.g. {{"early": ["E", "S0"]}}')
            entries = [(str(k), [str(v) for v in (vs if isinstance(vs, list) else [vs])]) for k, vs in data.items()]
            return _from_entries(entries, str(path))
        return parse_class_map(text, str(path))
    return parse_class_map(spec)


@dataclasses.dataclass
class TableLabels:
    """A catalogue's classes: labels (-1 where a row is in no class), names in label order, the
    T-types where the table has them (NaN elsewhere), and what the manifest records."""

    labels: np.ndarray
    class_names: list[str]
    ttype: np.ndarray
    report: dict


def _find(columns, names) -> str | None:
    lower = {str(c).lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def table_labels(
    table,
    source: str,
    *,
    class_column: str | None = None,
    class_map: ClassMap | None = None,
    unmapped: str = "fail",
) -> TableLabels:
    """The classes of a catalogue's rows.

    With `class_map`: the mapping applied to `class_column` (default: the TType column, else
    `class`). With `class_column` alone: its distinct values are the classes (the paper's order
    when they are the paper's names, else sorted). With neither: a TType column under the paper's
    rule, else `label` (0..3, the paper's classes), else `class` / `class_name`.
    """
    import pandas as pd

    from alexnet_jax import paper
    from alexnet_jax.data.labels import ttype_to_class

    columns = list(table.columns)
    ttype_name = _find(columns, ("ttype", "t-type", "t_type"))
    nan = np.full(len(table), np.nan)
    ttype = pd.to_numeric(table[ttype_name], errors="coerce").to_numpy(float) if ttype_name else nan
    if class_column is not None and class_column not in columns:
        raise LabelError(
            f"{source}: no column {class_column!r} for --class_column; columns: {', '.join(map(str, columns))}"
        )
    if class_map is not None:
        column = class_column or ttype_name or _find(columns, ("class", "class_name"))
        if column is None:
            raise LabelError(f"{source}: say which column --class_map applies to with --class_column")
        labels, report = class_map.assign(table[column].tolist(), source=source, column=column, unmapped=unmapped)
        return TableLabels(labels, list(class_map.class_names), ttype, {"rule": "class map", **report})
    if class_column is None and ttype_name is not None:
        labels = ttype_to_class(table[ttype_name].to_numpy(), source=source)
        return TableLabels(
            labels, list(paper.CLASS_NAMES), ttype, {"rule": "Nair & Abraham TType", "column": ttype_name}
        )
    if class_column is None and _find(columns, ("label",)) is not None:
        column = _find(columns, ("label",))
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~np.isin(values, np.arange(len(paper.CLASS_NAMES))))
        if len(bad):
            raise LabelError(
                f"{source}: column {column!r} must hold the paper's class indices 0..3; bad values at rows "
                f"{', '.join(map(str, bad[:10]))}. For other classes give a 'class' column of names, or "
                "--class_column with --class_map"
            )
        return TableLabels(values.astype(np.int64), list(paper.CLASS_NAMES), ttype, {"rule": "paper indices"})
    column = class_column or _find(columns, ("class", "class_name"))
    if column is None:
        raise LabelError(
            f"{source}: no class column; give a TType column (Nair & Abraham T-types), 'label' (0..3), 'class' "
            f"(class names), or name one with --class_column. Columns found: {', '.join(map(str, columns))}"
        )
    raw = table[column]
    empty = np.flatnonzero(raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy())
    if len(empty):
        raise LabelError(
            f"{source}: column {column!r} is empty at rows {', '.join(map(str, empty[:10]))}; "
            "fill them or drop the rows"
        )
    values = raw.astype(str).str.strip()
    if set(values.str.casefold()) <= set(paper.CLASS_NAMES):  # the paper's classes, in the paper's order
        values = values.str.casefold()
        names = [c for c in paper.CLASS_NAMES if c in set(values)]
    else:
        names = sorted(set(values))
    if len(names) < 2:
        raise LabelError(f"{source}: column {column!r} holds one class only ({names}); a classification needs two")
    lookup = {c: i for i, c in enumerate(names)}
    labels = values.map(lookup).to_numpy(np.int64)
    counts = np.bincount(labels, minlength=len(names))
    report = {"rule": "class names", "column": column, "class_counts": dict(zip(names, map(int, counts), strict=True))}
    return TableLabels(labels, names, ttype, report)
