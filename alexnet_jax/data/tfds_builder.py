"""A TFDS builder over a prepared data set, for users of `tfds.load` / `builder.as_dataset`.

    from alexnet_jax.data.tfds_builder import build_tfds
    builder = build_tfds("data/galaxies", "~/tensorflow_datasets")            # config "all"
    ds = builder.as_dataset(split="train")
    # later, in any process:
    import tensorflow_datasets as tfds
    from alexnet_jax.data import tfds_builder; tfds_builder.builder_class()  # registers the name
    ds = tfds.load("alexnet_jax_galaxies", split="train", data_dir="~/tensorflow_datasets")
    # or without this package at all:
    ds = tfds.builder_from_directory("~/tensorflow_datasets/alexnet_jax_galaxies/all/1.0.0").as_dataset(split="train")

Config "all" has one split, "train", with every example in prepared order; configs
"paper_run<r>" (r = 0..99) have "train" and "test" from `paper_split(r)`, the train
split in drawn order. Features: image (256, 256, 3) uint8 (PNG, lossless), label
ClassLabel(the manifest's class_names, in label order: any number of classes), id (text),
ttype (float32, NaN where unknown), index (row in the prepared set). The built set's
metadata (metadata.json) records the prepared set's name, class names and file digests; a
build over another set with other classes is refused rather than silently reused (TFDS
reuses whatever is already built under `data_dir`). TensorFlow and TFDS are imported only
when these functions run.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

NAME = "alexnet_jax_galaxies"
BUILDER_VERSION = "1.0.0"
NUM_PAPER_RUNS = 100

_CLASS = None


def _importlib_resources_shim() -> None:
    """TFDS 4.9.x imports the `importlib_resources` backport unconditionally, but declares it
    only for Python < 3.9; on newer Pythons the standard library's module has the same API."""
    import importlib.util
    import sys

    if "importlib_resources" in sys.modules or importlib.util.find_spec("importlib_resources"):
        return
    import importlib.resources
    import importlib.resources.abc  # noqa: F401  (tfds uses importlib_resources.abc.Traversable)

    sys.modules["importlib_resources"] = importlib.resources


def builder_class():
    """The GeneratorBasedBuilder subclass (defined, and registered with TFDS, on first call)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import numpy as np

    _importlib_resources_shim()
    import tensorflow_datasets as tfds

    from alexnet_jax.data.prepared import IMAGE_SIZE, class_names_of, load_prepared, read_manifest
    from alexnet_jax.data.splits import paper_split

    @dataclasses.dataclass(eq=False)
    class GalaxyConfig(tfds.core.BuilderConfig):
        run_index: int | None = None

    configs = [GalaxyConfig(name="all", description="every example of the prepared set, split 'train'")]
    configs += [
        GalaxyConfig(name=f"paper_run{r}", run_index=r, description=f"the paper's train/test split of run {r}")
        for r in range(NUM_PAPER_RUNS)
    ]

    class AlexnetJaxGalaxies(tfds.core.GeneratorBasedBuilder):
        """Images of an alexnet_jax prepared data set, labelled with its manifest's classes."""

        VERSION = tfds.core.Version(BUILDER_VERSION)
        RELEASE_NOTES = {BUILDER_VERSION: "Built from an alexnet_jax.prepared/1 directory."}
        BUILDER_CONFIGS = configs

        def __init__(self, *, prepared_dir: str | os.PathLike | None = None, **kwargs):
            self._prepared_dir = Path(prepared_dir) if prepared_dir else None
            super().__init__(**kwargs)

        def _info(self):
            # Without a prepared directory (reading a built set) the label names come from the built files.
            label = tfds.features.ClassLabel()
            description, metadata = "Galaxy images of an alexnet_jax prepared data set.", None
            if self._prepared_dir is not None:
                manifest = read_manifest(self._prepared_dir)
                names = class_names_of(manifest)
                label = tfds.features.ClassLabel(names=names)
                description = (
                    f"Galaxy images of the alexnet_jax prepared set {manifest['name']!r} ({manifest['source']}), "
                    f"{len(names)} classes in label order: {', '.join(names)}."
                )
                metadata = tfds.core.MetadataDict(
                    prepared_name=manifest["name"], class_names=names, prepared_sha256=manifest["sha256"]
                )
            return self.dataset_info_from_configs(
                description=description,
                metadata=metadata,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), encoding_format="png"),
                        "label": label,
                        "id": tfds.features.Text(),
                        "ttype": tfds.features.Scalar(dtype=np.float32),
                        "index": tfds.features.Scalar(dtype=np.int64),
                    }
                ),
                supervised_keys=("image", "label"),
                citation="Schneider, Stenning & Elliott (2023), Front. Astron. Space Sci. 10:1197358; "
                "Nair & Abraham (2010), ApJS 186, 427.",
            )

        def _split_generators(self, dl_manager):
            del dl_manager
            if self._prepared_dir is None:
                raise ValueError(
                    f"{NAME} is built from a prepared directory: call "
                    "alexnet_jax.data.tfds_builder.build_tfds(prepared_dir, data_dir) first."
                )
            data = load_prepared(self._prepared_dir, verify=True)
            run = self.builder_config.run_index
            if run is None:
                return {"train": self._generate_examples(data, np.arange(len(data.labels)))}
            train, test = paper_split(run, num_examples=len(data.labels))
            return {"train": self._generate_examples(data, train), "test": self._generate_examples(data, test)}

        def _generate_examples(self, data, indices):
            ids = data.metadata["id"].astype(str).to_numpy()
            ttypes = data.metadata["ttype"].to_numpy(dtype=np.float64)
            for i in indices:
                i = int(i)
                yield (
                    i,
                    {
                        "image": np.asarray(data.images[i]),
                        "label": int(data.labels[i]),
                        "id": ids[i],
                        "ttype": np.float32(ttypes[i]),
                        "index": i,
                    },
                )

    _CLASS = AlexnetJaxGalaxies
    return _CLASS


def build_tfds(
    prepared_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    *,
    config: str = "all",
    run_index: int | None = None,
):
    """Write the TFDS version of a prepared set under `data_dir`; return the ready builder.

    `run_index` is a shortcut for config f"paper_run{run_index}".
    """
    if run_index is not None:
        config = f"paper_run{int(run_index)}"
    cls = builder_class()
    check_not_built_from_another_set(prepared_dir, data_dir, config)
    builder = cls(prepared_dir=prepared_dir, data_dir=os.path.expanduser(str(data_dir)), config=config)
    builder.download_and_prepare()
    return builder


def check_not_built_from_another_set(prepared_dir: str | os.PathLike, data_dir: str | os.PathLike, config: str) -> None:
    """TFDS reuses a build already under `data_dir`: refuse one made from another prepared set
    (other classes, or other files) instead of handing its examples back as this set's."""
    from alexnet_jax.data.prepared import class_names_of, read_manifest
    from alexnet_jax.errors import PreparedDataError

    built = load_tfds_builder(data_dir, config)
    if not built.is_prepared():
        return
    manifest = read_manifest(prepared_dir)
    names, built_names = class_names_of(manifest), list(built.info.features["label"].names)
    where = f"{built.data_path} (built by TFDS)"
    if built_names != names:
        raise PreparedDataError(
            f"{where} has the classes {built_names}, but {prepared_dir} has {names}; "
            "give build_tfds another data_dir, or delete that directory to build this set there"
        )
    digests = (built.info.metadata or {}).get("prepared_sha256")
    if digests is not None and digests != manifest["sha256"]:
        raise PreparedDataError(
            f"{where} was built from other files than {prepared_dir} (sha256 differ); "
            "give build_tfds another data_dir, or delete that directory to build this set there"
        )


def load_tfds_builder(data_dir: str | os.PathLike, config: str = "all"):
    """A builder for an already built set (no prepared directory needed)."""
    cls = builder_class()
    return cls(data_dir=os.path.expanduser(str(data_dir)), config=config)
