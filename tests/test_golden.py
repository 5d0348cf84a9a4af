"""Golden files: the paper's two-arm analysis must not change as the analysis grows.

The fixtures under tests/golden/ were written by the analysis as it stood before N-arm studies
(commit a758995), from small deterministic demo studies: the paper's pair, and the pair with an
arm missing from some runs. Every file there must come out again unchanged, except that report.md
may grow at its end and summary.json may gain keys: N-arm additions append, they never rewrite.
PNG bytes depend on the matplotlib version, so figures are checked by name only.

One change was meant: since the analysis became one engine, the paper's pair is the engine's pair,
so the CIs of the full-run paired differences (summary.json "paired", Table P, the report's tests)
are those of Tables A2/A3 (paper_pair: peak accuracy [1.92, 4.12] -> [1.97, 4.07] points, epoch of
the peak [-155.0, -139.6] -> [-155.105, -140.99]); only those lines of the fixtures were updated.

    python -m tests.test_golden   # rewrite the fixtures (only when a change is meant to alter them)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from alexnet_jax.analysis import demo, pipeline
from alexnet_jax.toolbox import write_json_atomic

GOLDEN = Path(__file__).parent / "golden"
WORKDIR_MARK = "<WORKDIR>"
FIGURE_LIST = "figures.txt"
APPEND_ONLY = ("report.md",)


def _drop_arm(workdir: Path, runs: dict[int, str]) -> None:
    """Remove one arm from some runs of a demo study: a study with missing arms."""
    for run, arm in runs.items():
        path = workdir / f"run_{run:03d}" / "results.json"
        results = json.loads(path.read_text())
        del results["arms"][arm]
        write_json_atomic(path, results)


def _paper_pair(workdir: Path) -> dict:
    demo.make_demo_study(workdir, num_runs=5, epochs=(60, 210), seed=2)
    return {"example_run": 1, "figures": True}


def _partial(workdir: Path) -> dict:
    demo.make_demo_study(workdir, num_runs=4, epochs=(30, 40), seed=4)
    _drop_arm(workdir, {1: "scratch", 2: "pretrained"})
    return {"figures": False}


STUDIES = {"paper_pair": _paper_pair, "partial": _partial}


def analyse(name: str, workdir: Path) -> dict[str, str]:
    """Build study `name` in workdir and analyse it; its text outputs by file name, workdir masked."""
    options = STUDIES[name](workdir)
    outdir = workdir / "analysis"
    pipeline.analyze(workdir, outdir, resamples=500, seed=0, log=lambda message: None, **options)
    texts = {
        path.name: path.read_text().replace(str(workdir), WORKDIR_MARK)
        for path in sorted(outdir.iterdir())
        if path.suffix in (".json", ".md", ".csv")
    }
    texts[FIGURE_LIST] = "".join(f"{path.name}\n" for path in sorted(outdir.glob("*.png")))
    return texts


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_paper_outputs_unchanged(name, tmp_path):
    expected_dir = GOLDEN / name
    produced = analyse(name, tmp_path)
    for path in sorted(expected_dir.iterdir()):
        expected, actual = path.read_text(), produced.get(path.name)
        assert actual is not None, f"{path.name} is no longer written"
        if path.name == "summary.json":
            old, new = json.loads(expected), json.loads(actual)
            for key, value in old.items():
                assert new.get(key) == value, f"summary.json key {key!r} changed"
        elif path.name in APPEND_ONLY:
            assert actual.startswith(expected), f"{path.name}: today's text changed (additions may only append)"
        elif path.name == FIGURE_LIST:
            missing = set(expected.split()) - set(actual.split())
            assert not missing, f"figures no longer drawn: {sorted(missing)}"
        else:
            assert actual == expected, f"{path.name} changed"


def write_golden(root: Path) -> None:
    """Rewrite every fixture from the analysis as it is now."""
    import tempfile

    for name in sorted(STUDIES):
        with tempfile.TemporaryDirectory() as tmp:
            texts = analyse(name, Path(tmp))
        target = root / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for filename, text in texts.items():
            (target / filename).write_text(text)
        print(f"wrote {target} ({len(texts)} files)")


if __name__ == "__main__":
    write_golden(Path(sys.argv[1]) if len(sys.argv) > 1 else GOLDEN)
