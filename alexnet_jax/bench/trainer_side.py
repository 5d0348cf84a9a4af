"""`--trainer`: the real trainer end to end, at a size where an epoch's compute is as short as a GPU's.

On a GPU one paper epoch of AlexNet is a fraction of a second of compute, so what the trainer
does around the steps (checkpoints, results, logs, host round trips, compilation) decides the
study's time. This measures it where that is visible: a run of the quick config on a few
hundred small images, trained by `alexnet_jax.train` exactly as a user would, against the
same epoch's steps dispatched back to back with nothing else (the same compiled executables).

    trainer_overhead_ratio = trainer's marginal epoch / pure compute of that epoch

The marginal epoch is the median over the epochs after the first (which compiles). The study
projection scales the measured end-to-end epoch to the paper's 14,034 images per epoch and adds
one compilation per process: it is measured, not a bound, but only at this image size.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from alexnet_jax import paper
from alexnet_jax.bench.records import record
from alexnet_jax.bench.settings import Settings

PURE_REPEATS = 3


def trainer_config(settings: Settings, data_dir: Path):
    """The default (quick) config at the benchmark's sizes and with --model: what `./run.sh` trains,
    every other default kept."""
    from alexnet_jax.configs import quick

    config = quick.get_config()
    config.model.name = settings.model
    config.data.dir = str(data_dir)
    config.data.image_size = settings.image_size
    config.augment.crop_size = settings.crop_size
    config.batch_size = config.eval_batch_size = settings.batch_size
    config.epochs.scratch = settings.trainer_epochs
    config.pipeline = settings.pipelines[0]
    config.model.dtype = settings.dtypes[0]
    if settings.depthwise != "auto":  # Settings checked that the model has the option
        config.model.depthwise = settings.depthwise
    if settings.conv_impl != "auto":
        config.model.conv_impl = settings.conv_impl
    return config


def pure_epoch_seconds(plan, run_index: int = 0) -> float:
    """One epoch of the arm's compiled train and eval steps, dispatched back to back (median of repeats)."""
    import jax

    from alexnet_jax import seeds
    from alexnet_jax.training.arms import finetune_plan, initial_variables
    from alexnet_jax.training.rundata import load_run_data, shared_pipeline
    from alexnet_jax.training.steps import init_state, make_mesh, replicate, zero_eval_totals, zero_train_totals
    from alexnet_jax.training.trainer import steps_for

    mesh = make_mesh()
    spec, model = plan.arm("scratch"), plan.model
    data = load_run_data(plan, run_index)
    pipeline = shared_pipeline(plan, data, mesh)
    key = seeds.arm_key(plan.seed, run_index, spec.id)
    crop = plan.data.train_augment.crop_size
    variables, _ = initial_variables(spec, model.name, model.num_classes, crop, key, None)
    finetune = finetune_plan(spec.finetune, list(variables["params"]), model.spec.blocks, model.spec.head)
    steps = steps_for(plan, spec, model.build(finetune.frozen_blocks), finetune, pipeline, mesh)
    state = init_state(variables["params"], variables.get("batch_stats", {}), steps.tx, finetune.trainable)
    state = replicate(state, mesh)
    order = seeds.epoch_order(data.train_idx, plan.seed, run_index, spec.id, 0, plan.data.shuffle_each_epoch)
    times = []
    for repeat in range(PURE_REPEATS + 1):
        t0 = time.perf_counter()
        # replicated, as the steps return them: uncommitted zeros would compile a second signature
        totals, eval_totals = replicate((zero_train_totals(), zero_eval_totals(model.num_classes)), mesh)
        for step, batch in enumerate(pipeline.batches(order, plan.batch_size, train=True, seed=0)):
            state, totals = steps.train(state, pipeline.resident, batch, seeds.step_key(key, 1, repeat, step), totals,
                                        step)  # fmt: skip
        for step, batch in enumerate(pipeline.batches(data.test_idx, plan.eval_batch_size, train=False, seed=0)):
            eval_totals, _ = steps.eval(state, pipeline.resident, batch, seeds.step_key(key, 2, repeat, step),
                                        eval_totals)  # fmt: skip
        jax.block_until_ready((totals, eval_totals))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])  # the first repeat may still compile


def measure_trainer(settings: Settings, info) -> dict:
    """Train one scratch run with the real trainer and compare its epochs with the pure compute."""
    from alexnet_jax import training
    from alexnet_jax.bench.jax_side import jax_device_info
    from alexnet_jax.bench.workload import synthetic_images
    from alexnet_jax.data.prepared import write_prepared
    from alexnet_jax.training.steps import make_mesh

    with tempfile.TemporaryDirectory(prefix="alexnet_jax_bench_trainer_") as tmp:
        root = Path(tmp)
        images, labels = synthetic_images(settings.num_images, 256, settings.seed)
        write_prepared(
            root / "data",
            images,
            labels,
            name="bench-synthetic",
            class_names=paper.CLASS_NAMES,
            source="alexnet_jax.bench: random pixels",
        )
        config = trainer_config(settings, root / "data")
        info(f"trainer: {settings.trainer_epochs} epochs of {settings.num_images} images at {settings.crop_size} px")
        started = time.perf_counter()
        plan = training.resolve(config, workdir=root / "runs")
        (results,) = training.train(plan, [0], ["scratch"], log=lambda line: info(line))
        wall = time.perf_counter() - started
        arm = results["arms"]["scratch"]
        rows = [json.loads(line) for line in (root / "runs" / "run_000" / "scratch" / "metrics.jsonl").open()]
        info("trainer: timing the same epoch's steps alone ...")
        pure = pure_epoch_seconds(plan)
    marginal = statistics.median(arm["epoch_seconds"][1:]) if len(arm["epoch_seconds"]) > 1 else None
    phases = {name: statistics.mean(r["seconds"][name] for r in rows[1:]) for name in rows[0]["seconds"]}
    images_per_epoch = arm["train_images_per_epoch"] + len(results["split"]["test_indices"])
    rec = record(
        kind="trainer",
        name=f"trainer {config.pipeline} {config.model.dtype}",
        framework="jax",
        model=settings.model,
        variant="trainer",
        dtype=config.model.dtype,
        pipeline=config.pipeline,
        batch_size=settings.batch_size,
        image_size=settings.image_size,
        crop_size=settings.crop_size,
        compile_s=round(arm["time"]["compile_s"], 3),
        **jax_device_info(make_mesh()),
    )
    rec.update(
        trainer_overhead_ratio=round(marginal / pure, 4) if marginal else None,
        trainer_epoch_s=round(marginal, 4) if marginal else None,
        pure_epoch_s=round(pure, 4),
        first_epoch_s=arm["epoch_seconds"][0],
        epochs=len(arm["epoch_seconds"]),
        images_per_epoch=images_per_epoch,
        phases_s={name: round(value, 4) for name, value in phases.items()},
        arm_time_s=arm["time"],
        process_wall_s=round(wall, 3),
        checkpoint_every_seconds=config.checkpoint_every_seconds,
        checkpoint_every_epochs=config.checkpoint_every_epochs,
    )
    if marginal:
        epochs = sum(paper.EPOCHS.values())
        per_epoch = marginal * (paper.TRAIN_SIZE + paper.TEST_SIZE) / images_per_epoch
        hours = (paper.RUNS * epochs * per_epoch + paper.RUNS * arm["time"]["compile_s"]) / 3600
        rec["projected_study_hours"] = round(hours, 3)
        rec["notes"].append(
            f"projection: {paper.RUNS} runs x {epochs} epochs x the measured epoch scaled to "
            f"{paper.TRAIN_SIZE + paper.TEST_SIZE:,} images, + one compilation per run; at {settings.crop_size} px"
        )
    return rec
