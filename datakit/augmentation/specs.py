"""Pipelines from what a user writes: a preset name, a spec file, or the short list form.

Three ways to say which augmentation to run, all ending in one ``albumentations.Compose``:

- a preset: ``medium`` or ``medium:fixed`` (preset, then the orientation assumption; see presets/);
- a spec file, YAML or JSON, in albumentations' own serialized form (what ``A.save`` writes, read
  as ``A.load`` would), so anything albumentations can do is available;
- the short form, a list of transforms, as the train config's ``augment:`` reads it::

      - HorizontalFlip                       # default parameters
      - {Affine: {rotate: [-10, 10], p: 0.5}}
      - {name: RandomBrightnessContrast, p: 0.3}

  (a YAML/JSON file holding such a list is a spec file too).

Every transform is checked before anything runs, and the first problem is one line that names
where it is, the unknown transform or key and the closest known one.

A pipeline is identified by the SHA-256 of its canonical serialized form (:func:`pipeline_hash`);
that form is what the offline writer stores once in the manifest header.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
# transforms that run Python functions: a spec cannot hold the functions, nor a manifest record them
NOT_SERIALIZABLE = ("Lambda",)


@dataclass
class Pipeline:
    """A ready pipeline and where it came from."""

    compose: Any
    """``albumentations.Compose`` moving boxes (COCO pixels), labels and masks together."""
    source: str
    """``preset:medium:upright``, ``file:aug.yaml`` or ``list``: what the user asked for."""
    min_visibility: float = 0.0
    min_area: float = 0.0

    def serialized(self) -> dict[str, Any]:
        return serialize(self.compose)

    def hash(self) -> str:
        return pipeline_hash(self.serialized())

    def image_only(self) -> Any:
        """The same transforms in a Compose without box handling, for callers that pass only ``image``."""
        import albumentations as A

        return _with_seed(A.Compose(list(self.compose.transforms)), self.compose.seed)  # a stream per transform


# ---------------------------------------------------------------------------------------------
# the transforms albumentations knows


def transform_classes() -> dict[str, type]:
    """Every albumentations transform and composition by its short name (``Affine``, ``OneOf``)."""
    import albumentations as A
    from albumentations.core.serialization import SERIALIZABLE_REGISTRY, register_additional_transforms

    register_additional_transforms()
    known = {name: obj for name, obj in vars(A).items()
             if isinstance(obj, type) and issubclass(obj, (A.BasicTransform, A.BaseCompose)) and not name.startswith("_")}
    for name, cls in SERIALIZABLE_REGISTRY.items():
        if isinstance(cls, type) and issubclass(cls, (A.BasicTransform, A.BaseCompose)):
            known.setdefault(name.rsplit(".", 1)[-1], cls)
    return known


def _parameters(cls: type) -> set[str] | None:
    """Names ``cls`` accepts, or None when it takes ``**kwargs`` (then albumentations checks)."""
    schema = getattr(cls, "InitSchema", None)
    names: set[str] = set()
    if schema is not None and hasattr(schema, "model_fields"):
        names |= set(schema.model_fields)
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return None
    for name, param in signature.parameters.items():
        if name == "self":
            continue
        if param.kind is param.VAR_KEYWORD and not names:
            return None
        if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            names.add(name)
    return names


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _as_tuples(value: Any) -> Any:
    # YAML has no tuples; albumentations takes ranges as tuples
    if isinstance(value, list):
        return tuple(_as_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_tuples(v) for k, v in value.items()}
    return value


def first_lines(exc: BaseException, count: int = 3) -> str:
    """An exception's first ``count`` non-empty lines on one line (its type name when it has none)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:count]) or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# the short form


def parse_entry(entry: Any, where: str) -> tuple[str, dict[str, Any]]:
    """(transform name, parameters) of one short-form entry."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and "name" in entry:
        return str(entry["name"]), {k: v for k, v in entry.items() if k != "name"}
    if isinstance(entry, dict) and len(entry) == 1:
        (name, params), = entry.items()
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise DatakitError(f"{where}: parameters of {name} must be a mapping, got {params!r}")
        return str(name), params
    raise DatakitError(f"{where}: expected a transform name, {{Name: {{param: value}}}} or "
                       f"{{name: Name, param: value}}, got {entry!r}")


def build_transform(name: str, params: dict[str, Any], where: str, known: dict[str, type] | None = None) -> Any:
    """One albumentations transform, with unknown names and keys named before albumentations sees them."""
    known = known if known is not None else transform_classes()
    cls = known.get(name)
    if cls is None:
        hint = _did_you_mean(name, known) or " (see albumentations' transform list)"
        raise DatakitError(f"{where}: unknown transform '{name}'{hint}")
    if name in NOT_SERIALIZABLE:
        raise DatakitError(f"{where}: {name} runs Python functions, which a spec cannot hold and a manifest cannot "
                           "record (no lineage); use albumentations' named transforms")
    accepted = _parameters(cls)
    if accepted is not None:
        for key in params:
            if key not in accepted:
                raise DatakitError(f"{where}: {name}: unknown parameter '{key}'{_did_you_mean(key, accepted)}")
    try:
        return cls(**params)
    except DatakitError:
        raise
    except Exception as exc:  # pydantic ValidationError, TypeError, ValueError: all mean bad parameters
        raise DatakitError(f"{where}: {name}: bad parameters {params!r} ({first_lines(exc)})") from None


def from_list(spec: list[Any], prefix: str = "augment") -> list[Any]:
    """The transforms of a short-form list (``prefix[i]`` names an entry in errors)."""
    known = transform_classes()
    transforms = []
    for index, entry in enumerate(spec):
        where = f"{prefix}[{index}]"
        name, params = parse_entry(entry, where)
        transforms.append(build_transform(name, _nested(_as_tuples(params), f"{where}: {name}", known), where, known))
    return transforms


def _nested(params: dict[str, Any], where: str, known: dict[str, type]) -> dict[str, Any]:
    """``params`` with a composition's short-form children (OneOf, SomeOf, Sequential) built as transforms."""
    children = params.get("transforms")
    if children is None:
        return params
    if not isinstance(children, (list, tuple)):
        raise DatakitError(f"{where}: 'transforms' must be a list of transforms")
    built = []
    for index, child in enumerate(children):
        at = f"{where}.transforms[{index}]"
        name, child_params = parse_entry(child, at)
        built.append(build_transform(name, _nested(child_params, f"{at}: {name}", known), at, known))
    return {**params, "transforms": built}


# ---------------------------------------------------------------------------------------------
# albumentations' serialized form


def _from_node(node: Any, where: str, known: dict[str, type]) -> Any:
    if not isinstance(node, dict):
        raise DatakitError(f"{where}: expected a transform (a mapping with '__class_fullname__'), got {node!r}")
    if "__class_fullname__" not in node:
        raise DatakitError(f"{where}: missing '__class_fullname__' (keys found: {', '.join(map(str, node)) or 'none'})")
    name = str(node["__class_fullname__"]).rsplit(".", 1)[-1]
    params = {k: v for k, v in node.items() if k != "__class_fullname__"}
    if "transforms" in params:
        children = params["transforms"]
        if not isinstance(children, list):
            raise DatakitError(f"{where}: {name}: 'transforms' must be a list")
        params["transforms"] = [_from_node(child, f"{where}.transforms[{i}]", known) for i, child in enumerate(children)]
    if name not in ("Compose", "Sequential") and "p" not in params:
        params["p"] = 0.5  # what A.from_dict assumes for an old file without 'p'
    return build_transform(name, params, where, known)


def from_serialized(data: dict[str, Any], where: str) -> Any:
    """The transform of albumentations' serialized form (``{"__version__": ..., "transform": {...}}``)."""
    unknown = [k for k in data if k not in ("__version__", "transform")]
    if unknown:
        raise DatakitError(f"{where}: unknown key '{unknown[0]}'{_did_you_mean(str(unknown[0]), ['transform'])} "
                           "(a serialized albumentations pipeline has '__version__' and 'transform')")
    if "transform" not in data:
        raise DatakitError(f"{where}: 'transform' is missing (a serialized albumentations pipeline has "
                           "'__version__' and 'transform')")
    return _from_node(data["transform"], f"{where}: transform", transform_classes())


def serialize(compose: Any) -> dict[str, Any]:
    """albumentations' serialized form of ``compose`` (``A.to_dict``), JSON-clean."""
    import albumentations as A

    try:
        data = A.to_dict(compose)
    except Exception as exc:  # Lambda without a name, a custom transform albumentations cannot write
        raise DatakitError(f"augment: the pipeline cannot be serialized, so its images would have no lineage "
                           f"({first_lines(exc)})") from None
    return json.loads(json.dumps(data, default=_json_default))


def pipeline_hash(serialized: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a serialized pipeline and how seeds reach its transforms
    (``targets.SEEDING``: the same seed draws other images under another rule), the key it is stored under."""
    from datakit.augmentation.targets import SEEDING

    keyed = {"pipeline": serialized, "seeding": SEEDING}
    canonical = json.dumps(keyed, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)


# ---------------------------------------------------------------------------------------------
# spec files


def read_spec_file(path: str | Path) -> Any:
    """The parsed content of a YAML or JSON spec file; syntax errors name line and column."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DatakitError(f"{path}: spec file does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise DatakitError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise DatakitError(f"{path}: {at}invalid YAML ({getattr(exc, 'problem', None) or exc})") from None


def transforms_from_data(data: Any, where: str) -> tuple[list[Any], dict[str, Any]]:
    """(transforms, box settings) of a parsed spec: serialized form or a short-form list."""
    import albumentations as A

    if isinstance(data, list):
        return from_list(data, prefix=where), {}
    if isinstance(data, dict) and ("transform" in data or "__version__" in data):
        transform = from_serialized(data, where)
        box: dict[str, Any] = {}
        if isinstance(transform, A.Compose):
            processor = transform.processors.get("bboxes")
            if processor is not None:
                box = {"min_visibility": processor.params.min_visibility, "min_area": processor.params.min_area}
            return list(transform.transforms), box
        return [transform], box
    if isinstance(data, dict) and isinstance(data.get("augment"), list):
        return from_list(data["augment"], prefix=f"{where}: augment"), {}
    kind = type(data).__name__ if data is not None else "nothing"
    raise DatakitError(f"{where}: expected albumentations' serialized form (a mapping with 'transform', as "
                       f"A.save writes) or a list of transforms, found {kind}")


def is_spec_file(text: str) -> bool:
    return Path(text).suffix.lower() in SPEC_SUFFIXES


# ---------------------------------------------------------------------------------------------
# the one entry point


def resolve(spec: Any, task: str = "classification", seed: int | None = None,
            orientation: str | None = None) -> Pipeline:
    """A :class:`Pipeline` for a preset name, a spec file path, a short-form list or a Compose."""
    import albumentations as A

    from datakit.augmentation import presets, targets

    if isinstance(spec, A.BaseCompose | A.BasicTransform):
        compose = targets.target_aware(spec)
        return Pipeline(_with_seed(compose, seed), "object")
    if isinstance(spec, Path) or (isinstance(spec, str) and (is_spec_file(spec) or "/" in spec)):
        data = read_spec_file(spec)
        transforms, box = transforms_from_data(data, str(spec))
        return _pipeline(transforms, f"file:{Path(spec).name}", seed, **box)
    if isinstance(spec, str):
        preset, _, suffix = spec.partition(":")
        if suffix and orientation and suffix != orientation:
            raise DatakitError(f"preset '{spec}' names orientation '{suffix}' but orientation '{orientation}' was "
                               "also given; give it once")
        chosen = presets.get(preset)
        orient = presets.check_orientation(suffix or orientation or presets.DEFAULT_ORIENTATION)
        transforms = chosen.build(task, orient)
        box = chosen.box_params(task)
        return _pipeline(transforms, f"preset:{chosen.name}:{orient}", seed, **box)
    if isinstance(spec, list):
        return _pipeline(from_list(spec), "list", seed)
    raise DatakitError(f"augment: expected a preset name, a spec file or a list of transforms, got {spec!r}")


def _pipeline(transforms: list[Any], source: str, seed: int | None, min_visibility: float = 0.0,
              min_area: float = 0.0) -> Pipeline:
    from datakit.augmentation import targets

    compose = targets.compose(transforms, seed=seed, min_visibility=min_visibility, min_area=min_area,
                              save_applied_params=True)
    return Pipeline(compose, source, float(min_visibility), float(min_area))


def _with_seed(compose: Any, seed: int | None) -> Any:
    if seed is not None:
        from datakit.augmentation.targets import reseed

        reseed(compose, seed)
    return compose


def from_header(entry: dict[str, Any]) -> Any:
    """The Compose stored in a manifest header under a pipeline hash (see the offline writer)."""
    import warnings

    import albumentations as A

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Got processor for bboxes, but no transform to process it")
        compose = A.from_dict(entry["pipeline"])
    compose.save_applied_params = True
    return compose
