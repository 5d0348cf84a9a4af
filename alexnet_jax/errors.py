"""Every exception the project raises on purpose, in one place.

Each message names the file, flag, key or row at fault and says what to do; the commands turn
them into one `error: ...` line and an exit code (`alexnet_jax.cli`), never a traceback. A
module that raises one also re-exports it, so `alexnet_jax.data.folder.FolderError` still works.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file that is missing, does not import, or names an unknown variant or field."""


# ---- data
class PreparedDataError(ValueError):
    """A prepared data set that cannot be read; the message names the file."""


class SplitError(ValueError):
    """Arguments that cannot describe a split."""


class CatalogError(ValueError):
    """A catalogue that cannot be read or does not meet the paper's description."""


class FolderError(ValueError):
    """The folder and catalogue cannot be paired, or images are bad with on_bad_image='fail'."""


class BadImageError(ValueError):
    """One image that cannot be turned into a sound 256x256 RGB array."""


class LabelError(ValueError):
    """A value no class rule covers (a TType outside the paper's rule, a catalogue value outside
    the mapping), a mapping that puts one value in two classes, or a vote rule that cannot apply."""


class DataFileError(ValueError):
    """A data file in another layout than its format promises (e.g. an HDF5 file without `images`)."""


class CliError(ValueError):
    """A command given the wrong flags."""


class FetchError(RuntimeError):
    """One cut-out could not be fetched; `reason` says why, `retry` whether trying again may help."""

    def __init__(self, reason: str, retry: bool = True, wait: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.wait = wait


# ---- weights
class ConversionError(ValueError):
    """A state dict that does not fit the model; the message names every bad key with both shapes."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read safely; the message names the file."""


class HubFileUnavailable(RuntimeError):
    """The file cannot be fetched from here (offline, no network, no huggingface_hub); says how to supply it."""


class HubFileNotFound(ValueError):
    """The repository, revision or file does not exist (or is private): the flags are wrong."""


class ParityError(RuntimeError):
    """Converted weights disagree with torchvision beyond the tolerance."""


class ImageNetWeightsUnavailable(RuntimeError):
    """The ImageNet file is neither on disk nor downloadable; says how to provide it."""


class NoTorchSource(ValueError):
    """A model without torchvision or timm weights (the test model) asked for them; names those that have them."""


class ParamsDirError(ValueError):
    """A directory that is not a converted-weights directory; the message names it."""


# ---- training and results
class ResultsError(ValueError):
    """A results.json that does not follow the schema; the message names file and key."""


class TrainingError(RuntimeError):
    """A failure the user must act on; the message says what happened and what to do."""


class RunLockedError(TrainingError):
    """Another process holds the run's lock."""


class Interrupted(TrainingError):
    """SIGTERM or SIGINT stopped training cleanly; the message says where and how to resume."""


# ---- commands above training
class PredictError(ValueError):
    """Images, a checkpoint or an output that `predict` cannot use; the message names it."""


class StudyError(RuntimeError):
    """No usable study: the message says where we looked and what to do."""


class SettingsError(ValueError):
    """A flag value the benchmark cannot run with; the message names the flag."""
