"""Real SDSS galaxies end to end: import a folder per class, train, analyse, predict.

The data (2,000 Galaxy Zoo 2 galaxies, spiral or not, 128 px, train/ and validation/ folders)
lives beside the repository in ../shared/data/gz2_kaggle_subset and is not part of the product;
set ALEXNET_JAX_REAL_DATA to point elsewhere. Without it the test skips and says why.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from alexnet_jax.analysis import pipeline
from alexnet_jax.data import prepared
from alexnet_jax.data.commands import DataOptions, run
from alexnet_jax.predict.engine import Forward
from alexnet_jax.predict.members import check_same_classes, data_class_names, load_members
from tests.helpers import REPO, tiny_config, train

REAL = Path(os.environ.get("ALEXNET_JAX_REAL_DATA", REPO.parent / "shared" / "data" / "gz2_kaggle_subset"))
pytestmark = pytest.mark.skipif(
    not (REAL / "train").is_dir(),
    reason=f"real galaxies not found at {REAL} (../shared/data/ is not part of a fresh clone; "
    "set ALEXNET_JAX_REAL_DATA to a folder-per-class tree to run this test)",
)


def test_real_galaxies_import_train_analyse_predict(tmp_path):
    data = tmp_path / "gz2"
    options = DataOptions(dataset="image_folder", image_dir=str(REAL), output=str(data), progress=False)
    assert run("prepare", options) == 0
    results = train(tiny_config(data, **{"epochs.scratch": 2}), tmp_path / "runs", [0, 1], ["scratch"])
    for result in results:
        assert result["class_names"] == ["non_spirals", "spirals"]
        assert result["split"]["protocol"] == "declared"
        assert result["split"]["test_counts"] == [300, 300] and result["split"]["train_counts"] == [700, 700]
        matrix = np.asarray(result["arms"]["scratch"]["confusion_matrix"])
        assert matrix.shape == (2, 2) and matrix.sum() == 600
    assert results[0]["split"]["test_indices"] == results[1]["split"]["test_indices"]  # the source's split

    summary = pipeline.analyze(tmp_path / "runs", resamples=50, log=lambda message: None)
    assert summary["num_runs"] == 2 and summary["scratch"]["n_runs"] == 2
    assert (tmp_path / "runs" / "analysis" / "report.md").is_file()

    best = sorted((tmp_path / "runs").rglob("scratch/best/metadata.json"))
    assert len(best) == 2
    members, _ = load_members([best[0].parent.parent])
    check_same_classes(members[0].class_names, data_class_names(data), members[0].params_dir, data)
    images = np.asarray(prepared.load_prepared(data)[0])
    out = Forward(members, batch_size=64).run(images)
    assert members[0].class_names == ("non_spirals", "spirals") and out["probabilities"].shape == (2000, 2)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    ensemble, _ = load_members(study=tmp_path / "runs", arm="scratch")  # both runs' scratch arms
    assert [m.params_dir for m in ensemble] == [b.parent for b in best]
    both = Forward(ensemble, batch_size=64).run(images[:256])
    assert both["mutual_information"].max() > 0  # two runs disagree somewhere
