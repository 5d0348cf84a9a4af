"""The benchmark's settings: one frozen object, built once from the flags and passed to everything.

Each field is the flag of the same name (`python -m alexnet_jax.bench --batch_size=32` sets
`Settings.batch_size`), so a new setting is one field here plus its flag definition in
`__main__`. Workload fields say what is measured: the summary line records them and the
PyTorch subprocess receives them as flags (`as_flags`). Run options (`_run_option`) say which
measurements run and where results go; neither records nor forwards them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from alexnet_jax.errors import SettingsError

LEVERS = ("scan", "vmap", "donate", "eval_sync")
TORCH_MEASUREMENTS = ("paper", "tuned")
SCAN_MODES = ("rolled", "unrolled")

# --quick: a CPU smoke test (< 2 minutes); every other field keeps its paper-scale default.
# `Settings.from_flag_values` applies these; `Settings(...)` itself always starts at paper scale.
QUICK = {
    "batch_size": 16,
    "image_size": 72,
    "crop_size": 64,
    "num_images": 256,
    "steps": 3,
    "warmup": 1,
    "torch_workers": 1,
    "torch_compile": False,  # a cold compile takes ~2 min on a 2-core CPU
    "vmap_models": (1, 2),
}


# --trainer: the quick config's images, a few hundred of them (bench.trainer_side); flags still win.
TRAINER = {"image_size": 72, "crop_size": 64, "batch_size": 64, "num_images": 512}


def _run_option(default):
    return dataclasses.field(default=default, metadata={"workload": False})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything one benchmark run needs, at paper scale by default; invalid values raise SettingsError."""

    quick: bool = False
    model: str = "alexnet"  # a name of alexnet_jax.models, measured in both frameworks
    batch_size: int = 384  # the paper's
    image_size: int = 256
    crop_size: int = 224
    num_images: int = 4096
    steps: int = 20
    warmup: int = 3
    torch_workers: int = 6
    torch_compile: bool = True
    jpeg_size: int = 100  # the paper's JPEGs were ~100 px
    seed: int = 0
    devices: int = 1
    scan_steps: int = 4
    vmap_models: tuple[int, ...] = (1, 2, 4)
    scan_modes: tuple[str, ...] | None = None  # None: chosen by backend (jax_side.default_scan_modes)
    trainer_epochs: int = 6  # --trainer: epochs of the measured run (the first compiles)
    depthwise: str = "auto"  # how the model computes depthwise convolutions (layers.DepthwiseConv), if it has them
    conv_impl: str = "auto"  # the model's convolution formulations (layers.FORMULATIONS): auto, native or fast

    dtypes: tuple[str, ...] = _run_option(("float32", "bfloat16"))
    pipelines: tuple[str, ...] = _run_option(("on_device", "tf_data"))
    torch: tuple[str, ...] = _run_option(TORCH_MEASUREMENTS)
    levers: tuple[str, ...] = _run_option(LEVERS)
    peak_tflops: Mapping[str, float] | None = _run_option(None)  # dtype -> TFLOP/s; None: table, else measured
    output_md: str | None = _run_option(None)
    output_jsonl: str | None = _run_option(None)
    torch_timeout: int = _run_option(1800)
    trainer: bool = _run_option(False)  # measure the whole trainer instead of the steps (bench.trainer_side)
    predict: bool = _run_option(False)  # measure prediction (galaxies/s) instead of training (bench.predict_side)

    def __post_init__(self):
        for mode in self.scan_modes or ():
            if mode not in SCAN_MODES:
                raise SettingsError(f"--scan_modes: unknown mode {mode!r}; use {', '.join(SCAN_MODES)}")
        for name in self.torch:
            if name not in TORCH_MEASUREMENTS:
                raise SettingsError(f"--torch: unknown measurement {name!r}; use {', '.join(TORCH_MEASUREMENTS)}")
        for lever in self.levers:
            if lever not in LEVERS:
                raise SettingsError(f"--levers: unknown lever {lever!r}; use {', '.join(LEVERS)}")
        if self.crop_size > self.image_size:
            raise SettingsError(f"--crop_size={self.crop_size} exceeds --image_size={self.image_size}")
        from alexnet_jax.models import get_spec

        try:
            spec = get_spec(self.model)
        except ValueError as error:
            raise SettingsError(f"--model: {error}") from None
        if self.torch and not self.trainer and spec.torch is None:
            from alexnet_jax.models import TORCH_MODEL_NAMES

            raise SettingsError(
                f"--torch={','.join(self.torch)}: {self.model} has no torchvision or timm twin to measure; "
                f"pass --torch= (no PyTorch measurements) or a --model that has one: {', '.join(TORCH_MODEL_NAMES)}"
            )
        if self.crop_size < spec.min_input_size or self.crop_size % spec.input_multiple:
            raise SettingsError(
                f"--crop_size={self.crop_size}: {self.model} needs at least {spec.min_input_size} px"
                + (f", a multiple of {spec.input_multiple}" if spec.input_multiple > 1 else "")
            )
        if self.depthwise != "auto" and "depthwise" not in spec.options:
            raise SettingsError(
                f"--depthwise={self.depthwise}: {self.model} has no depthwise option; leave it at auto "
                "or pick an EfficientNet-Lite"
            )
        if self.conv_impl != "auto" and "conv_impl" not in spec.options:
            raise SettingsError(f"--conv_impl={self.conv_impl}: {self.model} has no conv_impl option; leave it at auto")
        if self.predict and self.trainer:
            raise SettingsError("--predict and --trainer measure different things; give one of them")
        if self.trainer_epochs < 2:
            raise SettingsError(f"--trainer_epochs must be at least 2 (the first compiles), got {self.trainer_epochs}")
        for name in ("batch_size", "num_images", "steps", "warmup", "scan_steps", "devices"):
            if getattr(self, name) < 1:
                raise SettingsError(
                    f"--{name} must be at least 1 (warm-up includes compilation), got {getattr(self, name)}"
                )

    @classmethod
    def from_flag_values(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from parsed flag values keyed by field name (other flags are ignored); None takes the
        paper-scale or --quick default.

        The flags' own forms are converted here: lists to tuples, --torch_compile auto/on/off,
        --vmap_models strings to integers, --peak_tflops text to a dict. An empty --vmap_models
        or --scan_modes also means the default (an empty --levers or --torch means none).
        """
        fields = {field.name for field in dataclasses.fields(cls)}
        given = {name: tuple(v) if isinstance(v, list) else v for name, v in values.items() if name in fields}
        given["torch_compile"] = {"auto": None, "on": True, "off": False}[given["torch_compile"]]
        given["peak_tflops"] = parse_peak_flag(given["peak_tflops"])
        given["scan_modes"] = given["scan_modes"] or None
        given["vmap_models"] = given["vmap_models"] or None
        if given["vmap_models"] is not None:
            try:
                given["vmap_models"] = tuple(int(k) for k in given["vmap_models"])
            except ValueError:
                raise SettingsError(
                    f"--vmap_models={','.join(given['vmap_models'])}: give integers, e.g. 1,2,4"
                ) from None
        chosen = {name: value for name, value in given.items() if value is not None}
        sized = {**(QUICK if given["quick"] else {}), **(TRAINER if given.get("trainer") else {})}
        return cls(**{**sized, **chosen})

    @property
    def needs_torch(self) -> bool:
        """Whether the PyTorch subprocess has work: a PyTorch measurement, or a peak --peak_tflops does
        not give (on a device the peak table lacks, the best of both frameworks' matmuls is the peak)."""
        return bool(self.torch) or not {"float32", "bfloat16"} <= set(self.peak_tflops or {})

    def workload(self) -> dict:
        """The workload fields by name: what the summary line records."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("workload", True)}

    def as_flags(self) -> list[str]:
        """The workload as flags, for the PyTorch subprocess (`from_flag_values` reads them back)."""
        argv = []
        for name, value in self.workload().items():
            if name == "torch_compile":
                argv.append(f"--torch_compile={'on' if value else 'off'}")
            elif isinstance(value, bool):
                argv.append(f"--{name}" if value else f"--no{name}")
            elif isinstance(value, tuple):
                argv.append(f"--{name}={','.join(map(str, value))}")
            elif value is not None:
                argv.append(f"--{name}={value}")
        return argv

    @property
    def matmul_size(self) -> int:
        """Side of the matmul that measures a peak where the table has none."""
        return 1024 if self.quick else 2048


def parse_peak_flag(text: str | None) -> dict | None:
    """--peak_tflops: one number for every dtype, or dtype=value pairs."""
    if not text:
        return None
    try:
        if "=" not in text:
            value = float(text)
            return {"bfloat16": value, "float32": value}
        out = {}
        for part in text.split(","):
            key, value = part.split("=")
            out[key.strip()] = float(value)
        return out
    except ValueError:
        raise SettingsError(f"--peak_tflops={text!r}: give a number or dtype=value pairs, e.g. bfloat16=790") from None
