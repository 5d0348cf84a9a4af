"""Every command answers bad input the same way: one `error:` line naming what to fix, the
documented exit code, and no traceback. The README's table is the one in alexnet_jax.cli."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet_jax import cli

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "alexnet_jax" / "configs"

CASES = [
    # (command line after `python -m`, expected exit code, text the error must contain)
    (["alexnet_jax.train", "--workdir=W", "--run_index=0", "--runs=0-1"], cli.EXIT_BAD_INPUT, "exactly one of"),
    (["alexnet_jax.train", "--workdir=W", "--runs=3-1"], cli.EXIT_BAD_INPUT, "runs backwards"),
    (["alexnet_jax.train", "--workdir=W", "--run_index=0", "--arms=imagenet"], cli.EXIT_BAD_INPUT, "unknown arm"),
    (["alexnet_jax.train", "--workdir=W", "--run_index=0", "--data_dir=nowhere"], cli.EXIT_BAD_INPUT, "nowhere"),
    (["alexnet_jax.study", "--workdir=W", "--runs=x", "--dry_run"], cli.EXIT_BAD_INPUT, "cannot read 'x'"),
    (["alexnet_jax.analyze", "--workdir=W"], cli.EXIT_BAD_INPUT, "--workdir W does not exist"),
    (["alexnet_jax.predict", "--checkpoint=W", "--images=W"], cli.EXIT_BAD_INPUT, "--images=W: no such file"),
    (["alexnet_jax.predict", "--checkpoint=W", "--images=W", "--shard=3/2"], cli.EXIT_BAD_INPUT, "--shard=3/2"),
    (["alexnet_jax.predict", "embed", "--images=W", "--output=e.csv"], cli.EXIT_BAD_INPUT, "embed writes .npy"),
    (["alexnet_jax.convert", "--torch_checkpoint=missing.pth", "--output=out"], cli.EXIT_BAD_INPUT, "no such file"),
    (["alexnet_jax.data", "frobnicate"], cli.EXIT_BAD_INPUT, "give one command"),
    # a config file that is not there, or a variant it does not have: one line listing what exists
    (
        ["alexnet_jax.train", f"--config={CONFIGS}/papr.py", "--workdir=W", "--run_index=0"],
        cli.EXIT_BAD_INPUT,
        "no such config file; the config files in",
    ),  # fmt: skip
    (
        ["alexnet_jax.study", f"--config={CONFIGS}/backbones.py:resnet51", "--workdir=W", "--runs=0"],
        cli.EXIT_BAD_INPUT,
        "backbones.py has no variant 'resnet51'; use one of",
    ),  # fmt: skip
    (
        [
            "alexnet_jax.study",
            "train",
            f"--config={CONFIGS}/initialisations.py:nonsense",
            "--workdir=W",
            "--run_index=0",
        ],
        cli.EXIT_BAD_INPUT,
        "initialisations.py has no variant 'nonsense'",
    ),  # fmt: skip
]


@pytest.mark.parametrize("argv, code, text", CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_bad_input_gets_one_clear_line_and_the_documented_code(tmp_path, argv, code, text):
    done = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", "HOME": str(tmp_path)},
    )
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors and text in done.stderr, done.stderr[-2000:]


def test_the_readme_documents_exactly_these_exit_codes():
    readme = (REPO / "README.md").read_text()
    table = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", readme, re.MULTILINE))
    assert {int(k): v for k, v in table.items()} == cli.EXIT_CODES
    assert len(set(cli.EXIT_CODES)) == len(cli.EXIT_CODES) == 6


def test_a_bad_config_names_itself_and_what_exists(tmp_path):
    """Missing, not importable, an unknown variant, a variant missing: one line each, naming the
    file and listing the folder's config files or the file's variants; a good config passes."""
    missing = cli.config_problem(f"{CONFIGS}/papr.py")
    assert f"--config={CONFIGS}/papr.py: no such config file" in missing
    files = sorted(p.name for p in CONFIGS.glob("*.py") if p.name != "__init__.py")
    assert {"paper.py", "quick.py", "label_efficiency.py"} <= set(files)
    assert f"are {', '.join(files)}" in missing  # every config file of the folder, sorted
    unknown = cli.config_problem(f"{CONFIGS}/backbones.py:resnet51")
    assert "has no variant 'resnet51'" in unknown and f"{CONFIGS}/backbones.py:resnet50" in unknown
    assert "needs a variant" in cli.config_problem(f"{CONFIGS}/backbones.py")
    nonsense = cli.config_problem(f"{CONFIGS}/initialisations.py:nonsense")
    assert "initialisations.py (no variant)" in nonsense and "initialisations.py:quick" in nonsense
    assert "paper.py (no variant)" in cli.config_problem(f"{CONFIGS}/paper.py:big")
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    assert "does not import (ModuleNotFoundError" in cli.config_problem(str(broken))
    assert "\n" not in cli.config_problem(str(broken))
    assert cli.config_problem(f"{CONFIGS}/backbones.py:resnet50") is None
    assert cli.config_problem(f"{CONFIGS}/initialisations.py:quick") is None
    assert cli.config_problem(cli.config_argument(["--config", f"{CONFIGS}/quick.py"], "unused")) is None


def test_an_unknown_config_field_is_one_line_naming_the_nearest():
    """`--config.X` for a field the config lacks (a renamed one, a typo): one line, not ml_collections' traceback."""
    argv = ["--config.normalize_imagenet=True", "--config.optim.learning_rate", "0.1", "--", "--config.late=1"]
    assert cli.config_overrides(argv) == ["normalize_imagenet", "optim.learning_rate"]
    legacy = cli.config_problem(f"{CONFIGS}/quick.py", ["normalize_imagenet"])
    assert legacy.startswith("--config.normalize_imagenet: the config has no field 'normalize_imagenet'")
    assert "--config.normalize" in legacy and "\n" not in legacy
    assert "optim has no field 'lr'" in cli.config_problem(f"{CONFIGS}/paper.py", ["optim.lr"])
    assert cli.config_problem(f"{CONFIGS}/quick.py:efficientnet_lite0", ["model.depthwise", "normalize"]) is None


PLAN_REFUSALS = [
    # (config field, bad value, what the one error must say)
    ("model.name", "resnet51", "--config.model.name: unknown model 'resnet51'"),
    ("model.dtype", "float16", "--config.model.dtype='float16'"),
    ("optim.name", "adam", "--config.optim.name='adam'"),
    ("pack_runs", -1, "--config.pack_runs=-1"),
    ("checkpoint_every_seconds", -1.0, "--config.checkpoint_every_seconds must be >= 0"),
    ("data.split", "random", "--config.data.split='random'"),
    ("selection", "val", "--config.selection=val needs a validation split"),
    ("pipeline", "gpu", "--config.pipeline='gpu'"),
    ("eval_augment", "centre", "--config.eval_augment='centre'"),
    ("augment.crop_size", 80, "--config.augment.crop_size=80 is larger than the images"),
    ("arms.scratch.init", "random", "--config.arms.scratch.init='random'"),
    ("arms.scratch.finetune", "everything", "--config.arms.scratch.finetune='everything'"),
]


@pytest.mark.parametrize("field, value, text", PLAN_REFUSALS, ids=[c[0] for c in PLAN_REFUSALS])
def test_the_plan_refuses_a_bad_field_naming_it(field, value, text):
    """The config is checked once, when it is resolved into the training plan, before any data is read."""
    from alexnet_jax import errors, training
    from alexnet_jax.configs import quick

    config = quick.get_config()
    *parents, leaf = field.split(".")
    target = config
    for parent in parents:
        target = target[parent]
    target[leaf] = value
    with pytest.raises(errors.TrainingError) as refused:
        training.resolve(config, workdir="unused")
    assert text in str(refused.value)
