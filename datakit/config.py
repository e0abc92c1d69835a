"""Training configuration: every key, its default and what it means, in one place.

A config is a tree of dataclasses (``TrainConfig``). Every leaf has a dotted name
(``optim.lr``, ``model.conv.filters``) that YAML files, ``--set key=value`` on the command line,
``datakit.train(..., **{"optim.lr": 0.01})`` and a sweep all use. Values are checked against the
annotated type when they are set, and an unknown key raises ``DatakitError`` naming the closest
known one. ``datakit train --list-keys`` prints this table.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Union

import yaml

from datakit.errors import DatakitError


def _opt(default: Any, help: str) -> Any:
    """A dataclass field with its help text; lists get a fresh copy per instance."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: _copy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def _section(cls: type, help: str) -> Any:
    return field(default_factory=cls, metadata={"help": help})


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


@dataclass
class DataConfig:
    image_size: Union[int, list[int]] = _opt(64, "input side in pixels, or [height, width]")
    resize: Literal["stretch", "letterbox", "crop"] = _opt(
        "stretch", "stretch to the size, letterbox (keep aspect, pad) or crop (keep aspect, centre crop)")
    channels: Union[Literal["auto"], int] = _opt(
        "auto", "1 (grayscale) or 3 (RGB); auto: 1 when every training image is single-channel "
        "and the model accepts it, else 3")
    normalize: Literal["train", "imagenet", "none"] = _opt(
        "train", "per-channel mean/std from the train split (saved with the run), ImageNet's, or none")
    val_fraction: float = _opt(0.15, "when the manifest has no splits: fraction of each class for validation")
    test_fraction: float = _opt(0.15, "when the manifest has no splits: fraction of each class held out for test")
    balance: Literal["none", "weights", "sampler"] = _opt(
        "none", "imbalanced classes: weights (loss weighted by inverse class frequency) or sampler "
        "(draw classes equally often)")
    cache: Union[Literal["auto"], bool] = _opt(
        "auto", "decode and resize every image once and keep it in memory; auto: when it fits in 2 GiB")
    workers: int = _opt(0, "DataLoader worker processes for decoding (0 = in the training process)")
    on_device: Union[Literal["auto"], bool] = _opt(
        "auto", "keep the cached images on the training device, batched and augmented there (no DataLoader); "
        "auto: on a CUDA GPU when they fit in a quarter of its free memory and the augmentation is made of "
        "flips, Affine, CropAndPad, RandomBrightnessContrast and RandomGamma (the light and medium presets); "
        "true also batches ColorJitter, GaussianBlur, MotionBlur, GaussNoise and OneOf (heavy)")


@dataclass
class ConvConfig:
    filters: list[int] = _opt([32, 64, 128], "output channels of each conv block (one block per entry)")
    kernel_size: Union[int, list[int]] = _opt(3, "kernel side, one for all blocks or one per block")
    stride: Union[int, list[int]] = _opt(1, "conv stride, one for all blocks or one per block")
    padding: Union[int, Literal["same", "valid"], list[Union[int, str]]] = _opt(
        "same", "same (kernel//2), valid (0) or pixels; one for all blocks or one per block")
    activation: Literal["relu", "leaky_relu", "gelu", "silu", "elu", "tanh"] = _opt("relu", "activation after each conv")
    batch_norm: bool = _opt(True, "batch normalization after each conv")
    convs_per_block: int = _opt(1, "convolutions in each block before its pooling")


@dataclass
class PoolConfig:
    type: Literal["max", "avg", "none"] = _opt("max", "pooling after each conv block")
    kernel_size: int = _opt(2, "pooling window side")
    stride: Union[int, None] = _opt(None, "pooling stride; null = kernel_size")
    padding: int = _opt(0, "pooling padding")


@dataclass
class HeadConfig:
    pooling: Literal["global_avg", "global_max", "global_avg_max", "flatten"] = _opt(
        "global_avg", "how feature maps become a vector: global average or max pooling, both side by side "
                      "(global_avg_max), or flatten")
    dense: list[int] = _opt([128], "hidden dense layer sizes before the output layer ([] = none)")
    dropout: float = _opt(0.2, "dropout before each dense layer")


@dataclass
class ModelConfig:
    name: str = _opt("cnn", "model family: cnn (built from model.conv/pool/head) or a torchvision "
                            "family (resnet18, mobilenet_v3_small, efficientnet_b0, ...), from scratch")
    weights: Union[str, None] = _opt(None, "local file with initial weights (a state dict or datakit "
                                           "checkpoint); never downloaded")
    stem: Literal["auto", "imagenet", "small"] = _opt(
        "auto", "torchvision families: imagenet (their stride-2 stem and max-pool) or small (CIFAR-style: "
                "3x3 stride-1 first convolution, no max-pool); auto: small for inputs under 128 px")
    conv: ConvConfig = _section(ConvConfig, "cnn: convolution blocks")
    pool: PoolConfig = _section(PoolConfig, "cnn: pooling after each block")
    head: HeadConfig = _section(HeadConfig, "cnn: classifier head")


@dataclass
class OptimConfig:
    name: Literal["adamw", "adam", "sgd", "rmsprop"] = _opt("adamw", "optimizer")
    lr: float = _opt(1e-3, "learning rate (peak, after warm-up)")
    weight_decay: float = _opt(1e-4, "weight decay")
    momentum: float = _opt(0.9, "momentum (sgd, rmsprop)")
    nesterov: bool = _opt(False, "Nesterov momentum (sgd)")


@dataclass
class ScheduleConfig:
    name: Literal["cosine", "step", "plateau", "none"] = _opt(
        "cosine", "learning-rate schedule over epochs: cosine decay, step decay, reduce on plateau, constant")
    warmup_epochs: int = _opt(0, "epochs of linear warm-up from lr/10 (cosine, step, none)")
    step_size: int = _opt(10, "step: epochs between decays")
    gamma: float = _opt(0.1, "step and plateau: factor the learning rate is multiplied by")
    patience: int = _opt(2, "plateau: epochs without improvement before decaying")
    min_lr: float = _opt(0.0, "cosine and plateau: lowest learning rate")


@dataclass
class LoopConfig:
    epochs: int = _opt(20, "maximum epochs")
    batch_size: int = _opt(64, "images per batch (per process under torchrun)")
    monitor: str = _opt("auto", "metric that picks the best checkpoint: val_loss or val_<metric> of the task "
                                "(classification: val_accuracy, val_macro_f1); auto: the task's first metric")
    patience: Union[int, None] = _opt(5, "early stopping: epochs without improvement of monitor; 0 or null = off")
    min_delta: float = _opt(0.0, "early stopping: smallest change that counts as an improvement")
    label_smoothing: float = _opt(0.0, "cross-entropy label smoothing")
    dice_weight: float = _opt(0.0, "semantic segmentation: weight of a Dice loss added to cross-entropy (helps "
                                   "small classes); 0 = cross-entropy only")
    grad_clip: Union[float, None] = _opt(None, "clip the gradient norm to this value; null = off")
    device: Literal["auto", "cpu", "cuda", "mps"] = _opt("auto", "auto picks CUDA, then MPS, then CPU")
    amp: Union[Literal["auto"], bool] = _opt("auto", "mixed precision; auto: on for CUDA only")
    threads: Union[int, None] = _opt(None, "CPU threads for torch; null = torch's default (divided among "
                                           "processes under torchrun)")


@dataclass
class TrainConfig:
    task: str = _opt("auto", "classification, localization, detection, semantic_segmentation, instance_segmentation "
                             "(or classify, localize, detect, segment, instance); auto: from what the manifest holds")
    seed: int = _opt(0, "seed for splits, weight init, shuffling and augmentation")
    data: DataConfig = _section(DataConfig, "images, splits, preprocessing, loading")
    augment: Union[str, list[Any]] = _opt([], "online augmentation of training images: a preset (light, medium, "
                                              "heavy, e.g. medium:fixed), a spec file (.yaml/.json) or a list "
                                              "like [{HorizontalFlip: {p: 0.5}}, {Affine: {rotate: [-10, 10]}}]")
    model: ModelConfig = _section(ModelConfig, "architecture")
    optim: OptimConfig = _section(OptimConfig, "optimizer")
    schedule: ScheduleConfig = _section(ScheduleConfig, "learning-rate schedule")
    train: LoopConfig = _section(LoopConfig, "training loop")


# short names for the keys people change most; used by CLI flags and datakit.train(**overrides)
ALIASES: dict[str, str] = {
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "patience": "train.patience",
    "device": "train.device",
    "lr": "optim.lr",
    "optimizer": "optim.name",
    "model": "model.name",
    "weights": "model.weights",
    "image_size": "data.image_size",
    "workers": "data.workers",
}


# ---------------------------------------------------------------------------------------------
# keys


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def describe(cls: type = TrainConfig, prefix: str = "") -> list[tuple[str, Any, str, str]]:
    """(dotted key, default, type, help) for every leaf key, in declaration order."""
    rows: list[tuple[str, Any, str, str]] = []
    hints = _hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        if _is_section(annotation):
            rows.extend(describe(annotation, f"{prefix}{f.name}."))
        else:
            rows.append((f"{prefix}{f.name}", getattr(defaults, f.name), _type_name(annotation), f.metadata.get("help", "")))
    return rows


def keys() -> list[str]:
    """Every settable dotted key."""
    return [row[0] for row in describe()]


def _sections(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    names = []
    for name, annotation in _hints(cls).items():
        if _is_section(annotation):
            names.append(prefix + name)
            names.extend(_sections(annotation, f"{prefix}{name}."))
    return names


def _unknown_key(key: str, where: str = "") -> DatakitError:
    candidates = keys() + list(ALIASES) + _sections()
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not close:
        # a misspelt last part: compare with the last parts of every key
        tails = {k.rsplit(".", 1)[-1]: k for k in keys()}
        near = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(tails), n=1, cutoff=0.6)
        close = [tails[near[0]]] if near else []
    hint = f"; did you mean '{close[0]}'?" if close else "; `datakit train --list-keys` lists every key"
    return DatakitError(f"{where}unknown config key '{key}'{hint}")


def resolve_key(key: str) -> str:
    """The dotted key for ``key``, which may be an alias or use ``__`` for dots (Python kwargs)."""
    key = key.replace("__", ".").replace("-", "_")
    return ALIASES.get(key, key)


# ---------------------------------------------------------------------------------------------
# type checking


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is list:
        args = typing.get_args(annotation)
        return f"list[{_type_name(args[0])}]" if args else "list"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` (ints become floats, tuples lists), or raise _Mismatch."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if annotation is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is Literal:
        if value in typing.get_args(annotation) and type(value) in {type(a) for a in typing.get_args(annotation)}:
            return value
        raise _Mismatch
    if origin in (Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _coerce(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (item,) = typing.get_args(annotation) or (Any,)
        return [_coerce(v, item) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise AssertionError(f"config type {annotation!r} is not handled")


def _leaf(key: str) -> tuple[Any, str, Any]:
    """(owning dataclass type, field name, annotation) for a dotted leaf key."""
    cls: type = TrainConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        hints = _hints(cls)
        if part not in hints:
            raise _unknown_key(key)
        annotation = hints[part]
        last = i == len(parts) - 1
        if _is_section(annotation):
            if last:
                raise DatakitError(f"config key '{key}' is a section; set one of its keys, e.g. "
                                   f"'{key}.{dataclasses.fields(annotation)[0].name}'")
            cls = annotation
        elif not last:
            raise _unknown_key(key)
        else:
            return cls, part, annotation
    raise _unknown_key(key)


def check_value(key: str, value: Any) -> Any:
    """``value`` converted to the type of ``key``; DatakitError naming both when it does not fit."""
    _, _, annotation = _leaf(key)
    try:
        return _coerce(value, annotation)
    except _Mismatch:
        close = ""
        if isinstance(value, str) and typing.get_origin(annotation) in (Literal, Union, types.UnionType):
            choices = [a for a in _literal_choices(annotation) if isinstance(a, str)]
            near = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
            close = f"; did you mean '{near[0]}'?" if near else ""
        raise DatakitError(f"config key '{key}': {value!r} is not {_type_name(annotation)}{close}") from None


def _literal_choices(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [c for a in typing.get_args(annotation) for c in _literal_choices(a)]
    return []


# ---------------------------------------------------------------------------------------------
# building configs


def get_key(config: TrainConfig, key: str) -> Any:
    key = resolve_key(key)
    _leaf(key)
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


OFF_AT_ZERO = ("train.patience",)  # keys where 0 means "off", stored as null


def set_key(config: TrainConfig, key: str, value: Any) -> None:
    """Set one dotted key (or alias) in place, type-checked; the key counts as set by the user."""
    key = resolve_key(key)
    value = check_value(key, value)
    if key in OFF_AT_ZERO and value == 0:
        value = None  # `--patience 0` switches early stopping off, the same as null
    node: Any = config
    parts = key.split(".")
    for part in parts[:-1]:
        node = getattr(node, part)
    setattr(node, parts[-1], value)
    # kept on the instance (not a field): it survives copies but is never a config key
    config.__dict__.setdefault(_USER_SET, set()).add(key)


_USER_SET = "_datakit_user_set"


def user_set_keys(config: TrainConfig) -> set[str]:
    """Keys the user chose: set through a config file, ``--set``, a flag, an override or a sweep's
    parameters, plus any key whose value differs from its default (a config built by hand in
    Python). Data-aware defaults (``datakit.engine.defaults``) never change these."""
    chosen = set(config.__dict__.get(_USER_SET, ()))
    for key, default, _, _ in describe():
        if key not in chosen and get_key(config, key) != default:
            chosen.add(key)
    return chosen


def _flatten(data: Mapping[str, Any], prefix: str, where: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if not isinstance(name, str):
            raise DatakitError(f"{where}config keys must be strings, found {name!r}")
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and key in _sections():
            flat.update(_flatten(value, f"{key}.", where))
        else:
            # aliases (`epochs: 5`) only at the top level, so `model: {...}` stays a section
            flat[resolve_key(key) if not prefix else key] = value
    return flat


def from_dict(data: Mapping[str, Any], base: TrainConfig | None = None, where: str = "") -> TrainConfig:
    """A config from nested (``{optim: {lr: 0.1}}``) and/or dotted (``{"optim.lr": 0.1}``) keys."""
    config = _copy(base) if base is not None else TrainConfig()
    for key, value in _flatten(data, "", where).items():
        try:
            set_key(config, key, value)
        except DatakitError as exc:
            if where and not str(exc).startswith(where):
                raise DatakitError(f"{where}{exc}") from None
            raise
    return config


def to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping: plain YAML keeps the last silently, so
    two `train:` blocks, or `lr` set twice, lost one of the settings without a word."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may be overridden here
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice in one mapping",
                                                    key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A config, space or pipeline file: a mapping, each key once (line and column on any error)."""
    path = Path(path)
    if not path.is_file():
        raise DatakitError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise DatakitError(f"{path}: {where}invalid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DatakitError(f"{path}: a config must be a mapping of keys to values, found {type(data).__name__}")
    # a pipeline file may hold the train config under a `train` step key; plain configs are top-level
    return data


def resolve_config(
    config: TrainConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Defaults, then the config (object, dict or YAML path), then dotted overrides; validated."""
    if config is None:
        resolved = TrainConfig()
    elif isinstance(config, TrainConfig):
        resolved = _copy(config)
    elif isinstance(config, Mapping):
        resolved = from_dict(config)
    else:
        resolved = from_dict(load_yaml(config), where=f"{config}: ")
    for key, value in (overrides or {}).items():
        set_key(resolved, key, value)
    validate(resolved)
    return resolved


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise DatakitError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _positive(key: str, value: float, allow_zero: bool = False, zero_means: str | None = None) -> None:
    """``zero_means`` says what 0 does where 0 is allowed: a user told only '>= 0' for early
    stopping would not learn that 0 switches it off."""
    if isinstance(value, float) and not math.isfinite(value):
        raise DatakitError(f"config key '{key}' must be a finite number, got {value}")
    allow_zero = allow_zero or zero_means is not None
    if value < 0 or (value == 0 and not allow_zero):
        bound = f">= 0 (0 {zero_means})" if zero_means else (">= 0" if allow_zero else "> 0")
        raise DatakitError(f"config key '{key}' must be {bound}, got {value}")


# one 3-channel float image of 4096 x 4096 is 192 MiB on the device, a batch of 32 of them 6 GiB;
# a larger side is a typo (data.image_size: 100000 asks for 112 GiB per image), not a wish
MAX_IMAGE_SIDE = 4096


def _non_finite(node: Any, prefix: str = "") -> tuple[str, float] | None:
    """The first key (dotted) whose value is NaN or infinite, anywhere in the config."""
    values = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if isinstance(value, float) and not math.isfinite(value):
            return key, value
        if isinstance(value, list) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
            return key, next(v for v in value if isinstance(v, float) and not math.isfinite(v))
        found = _non_finite(value, f"{key}.") if dataclasses.is_dataclass(value) else None
        if found:
            return found
    return None


def validate(config: TrainConfig) -> None:
    """Checks between keys and on ranges that types alone cannot express."""
    d, loop = config.data, config.train
    bad = _non_finite(config)
    if bad:
        raise DatakitError(f"config key '{bad[0]}' must be a finite number, got {bad[1]}")
    size = d.image_size if isinstance(d.image_size, list) else [d.image_size]
    if len(size) not in (1, 2) or any(s < 1 for s in size):
        raise DatakitError(f"config key 'data.image_size' must be a positive side or [height, width], got {d.image_size}")
    if any(s > MAX_IMAGE_SIDE for s in size):
        gib = size[0] * size[-1] * 3 * 4 / 2**30
        raise DatakitError(f"config key 'data.image_size' is at most {MAX_IMAGE_SIDE} pixels a side, got {d.image_size}: "
                           f"one image at that size is {gib:,.0f} GiB as a float tensor")
    if d.channels not in ("auto", 1, 3):
        raise DatakitError(f"config key 'data.channels' must be 1, 3 or auto, got {d.channels!r}")
    for key, value in (("data.val_fraction", d.val_fraction), ("data.test_fraction", d.test_fraction)):
        if not 0 <= value < 1:
            raise DatakitError(f"config key '{key}' must be in [0, 1), got {value}")
    if d.val_fraction + d.test_fraction >= 1:
        raise DatakitError("data.val_fraction + data.test_fraction must leave images for training "
                           f"(got {d.val_fraction} + {d.test_fraction})")
    _positive("data.workers", d.workers, zero_means="decodes in the training process")
    _positive("train.epochs", loop.epochs)
    _positive("train.batch_size", loop.batch_size)
    _positive("optim.lr", config.optim.lr)
    _positive("optim.weight_decay", config.optim.weight_decay, allow_zero=True)
    if loop.patience is not None:
        _positive("train.patience", loop.patience, zero_means="turns early stopping off")
    if not 0 <= loop.label_smoothing < 1:
        raise DatakitError(f"config key 'train.label_smoothing' must be in [0, 1), got {loop.label_smoothing}")
    if loop.threads is not None:
        _positive("train.threads", loop.threads)
    conv = config.model.conv
    if not conv.filters or any(f < 1 for f in conv.filters):
        raise DatakitError(f"config key 'model.conv.filters' must list at least one positive channel count, got {conv.filters}")
    for key in ("kernel_size", "stride", "padding"):
        value = getattr(conv, key)
        if isinstance(value, list) and len(value) != len(conv.filters):
            raise DatakitError(f"config key 'model.conv.{key}' lists {len(value)} values for "
                               f"{len(conv.filters)} conv blocks (model.conv.filters)")
    if not 0 <= config.model.head.dropout < 1:
        raise DatakitError(f"config key 'model.head.dropout' must be in [0, 1), got {config.model.head.dropout}")
    from datakit.tasks import AUTO, canonical_task, check_monitor

    if config.task != AUTO:
        config.task = canonical_task(config.task)
    if loop.monitor != AUTO:
        check_monitor(config.task, loop.monitor)
    if not isinstance(config.augment, (list, str)):
        raise DatakitError("config key 'augment' must be a preset name, a spec file or a list of transforms")


def dump_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=None)
