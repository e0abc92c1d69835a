"""THE place where boxes, labels and masks follow the pixels.

Every geometric change to an image — resizing for a model, letterboxing, online augmentation in
training, offline ``datakit augment`` — goes through :func:`apply`, so that an image's boxes, their
labels, its instance masks and its semantic mask can never get out of step with its pixels.

Conventions (the manifest's): boxes are absolute-pixel COCO ``x, y, w, h`` floats; instance masks
are ``(N, H, W)`` uint8 arrays, one per box, in the same order; a semantic mask is ``(H, W)`` of
class ids and is only ever moved with nearest-neighbour interpolation, never blended.

Rules applied here and nowhere else:

- input boxes are clipped to the image first (float drift such as a box ending at 1.0003 of the
  width must never raise, the "x_max out of [0, 1]" family of albumentations issues);
- albumentations decides which objects survive (``min_visibility``, ``min_area``); objects it drops
  are reported with the reason, never silently lost;
- when a mask exists, the box of a surviving object is recomputed from its transformed mask, and an
  object whose mask has left the image is dropped with that reason;
- a surviving object cut by the image border is marked clipped (``Result.clipped``,
  ``Result.objects``);
- the parameters each transform applied are recorded (``Result.applied``) and can be applied again
  (``apply(..., replay=...)``), independently of any seed. A parameter too large to record (the
  noise map of ``GaussNoise``, the size of the image) is recorded by shape and hash together with
  the transform's own random state at the moment it drew its parameters: replay regenerates it
  from that state and checks the hash, so replay is exact for noise too.
"""

from __future__ import annotations

import base64
import hashlib
import random
import weakref
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from datakit.errors import DatakitError

BOX_FORMAT = "coco"
# the label field albumentations carries through its box filtering: the input position of each box
_INDEX_FIELD = "object_index"

REASON_INVALID_INPUT = "box has no area inside the image"
REASON_FILTERED = "cut off by the transform (below min_visibility or min_area)"
REASON_MASK_GONE = "mask left the image"
REASON_CLIPPED = "cut by the image border"
# an edge within this many pixels counts as touching the border
_BORDER_TOLERANCE = 0.5


@dataclass
class Sample:
    """One image and the targets that must move with it."""

    image: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    masks: np.ndarray | None = None
    semantic_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.boxes):
            raise DatakitError(f"{len(self.boxes)} boxes but {len(self.labels)} labels: every box needs one label")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=np.uint8)
            if self.masks.ndim != 3 or len(self.masks) != len(self.boxes):
                raise DatakitError(f"instance masks must be (N, H, W) with one per box; got shape "
                                   f"{self.masks.shape} for {len(self.boxes)} boxes")
            if self.masks.shape[1:] != self.image.shape[:2]:
                raise DatakitError(f"instance masks are {self.masks.shape[2]}x{self.masks.shape[1]} but the image is "
                                   f"{self.image.shape[1]}x{self.image.shape[0]}")
        if self.semantic_mask is not None and self.semantic_mask.shape[:2] != self.image.shape[:2]:
            raise DatakitError(f"semantic mask is {self.semantic_mask.shape[1]}x{self.semantic_mask.shape[0]} but the "
                               f"image is {self.image.shape[1]}x{self.image.shape[0]}")


@dataclass(frozen=True)
class DroppedObject:
    index: int
    """Position of the object in the input sample."""
    reason: str


@dataclass
class Result:
    sample: Sample
    kept: np.ndarray
    """Input positions of the surviving objects, in output order."""
    dropped: list[DroppedObject]
    applied: list[dict[str, Any]] | None = None
    """The parameters each transform applied: ``[{"index", "name", "params"}]``, ``index`` being the
    transform's position in the pipeline's flattened list (:func:`leaves`); :func:`encode_applied`
    makes it JSON and :func:`apply` with ``replay=`` applies it again."""
    clipped: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=bool))
    """Per kept object (output order): True when the transform cut part of it off at the image border.

    Judged from the boxes: the output box touches a border of the output image while the input box
    touched no border of the input image. (An object moved exactly onto the border without losing
    pixels also counts; that is rare and errs on the side of telling.)"""

    def objects(self, count: int) -> list[dict[str, Any]]:
        """Status of each of the ``count`` input objects: kept, clipped or dropped (with the reason)."""
        status: list[dict[str, Any]] = [{"status": "dropped", "reason": "lost"} for _ in range(count)]
        clipped = self.clipped if len(self.clipped) == len(self.kept) else np.zeros(len(self.kept), dtype=bool)
        for position, (index, cut) in enumerate(zip(self.kept.tolist(), clipped.tolist())):
            status[index] = ({"status": "clipped", "reason": REASON_CLIPPED, "output": position} if cut
                             else {"status": "kept", "output": position})
        for drop in self.dropped:
            status[drop.index] = {"status": "dropped", "reason": drop.reason}
        return status


def compose(transforms: Sequence[Any], *, seed: int | None = None, min_visibility: float = 0.0,
            min_area: float = 0.0, save_applied_params: bool = False) -> Any:
    """An ``albumentations.Compose`` that moves boxes (COCO pixels), their labels and masks together."""
    import warnings

    import albumentations as A

    with warnings.catch_warnings():
        # a pipeline of pixel-only transforms (brightness, blur) is fine: boxes pass through unchanged
        warnings.filterwarnings("ignore", message="Got processor for bboxes, but no transform to process it")
        composed = A.Compose(
            list(transforms),
            bbox_params=A.BboxParams(format=BOX_FORMAT, label_fields=[_INDEX_FIELD], min_visibility=min_visibility,
                                     min_area=min_area, clip=True),
            seed=seed,
            save_applied_params=save_applied_params,
        )
    if seed is not None:
        reseed(composed, seed)  # a stream per transform (albumentations gives them all the same seed)
    return composed


def target_aware(transform: Any) -> Any:
    """``transform`` itself when it already moves boxes; else the same transforms composed with :func:`compose`.

    A pipeline loaded from a user's spec file or built for classification has no box processor;
    wrapping it keeps its transforms (and their random state) and adds the box handling.
    """
    import albumentations as A

    if isinstance(transform, A.Compose) and "bboxes" in transform.processors:
        params = transform.processors["bboxes"].params
        if params.format == BOX_FORMAT and _INDEX_FIELD in (params.label_fields or []):
            return transform
        # a user's pipeline with its own box settings: keep its filtering, use our box convention
        return compose(transform.transforms, seed=getattr(transform, "seed", None),
                       min_visibility=params.min_visibility, min_area=params.min_area,
                       save_applied_params=getattr(transform, "save_applied_params", False))
    if isinstance(transform, A.Compose):
        return compose(transform.transforms, seed=getattr(transform, "seed", None),
                       save_applied_params=getattr(transform, "save_applied_params", False))
    return compose([transform])


def mask_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight ``x, y, w, h`` boxes of ``(N, H, W)`` masks, and which masks are non-empty."""
    n = len(masks)
    boxes = np.zeros((n, 4), dtype=np.float64)
    present = np.zeros(n, dtype=bool)
    for i, mask in enumerate(masks):
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(mask.any(axis=0))
        present[i] = True
        boxes[i] = (cols[0], rows[0], cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0])
    return boxes, present


def _clip_to_image(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    x0 = np.clip(boxes[:, 0], 0, width)
    y0 = np.clip(boxes[:, 1], 0, height)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def _touches_border(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    t = _BORDER_TOLERANCE
    return ((boxes[:, 0] <= t) | (boxes[:, 1] <= t) | (boxes[:, 0] + boxes[:, 2] >= width - t)
            | (boxes[:, 1] + boxes[:, 3] >= height - t))


def leaves(transform: Any) -> list[Any]:
    """The transforms of a pipeline in call order, compositions (OneOf, Sequential) opened up."""
    import albumentations as A

    out = []
    for t in getattr(transform, "transforms", []):
        if isinstance(t, A.BaseCompose):
            out += leaves(t)
        else:
            out.append(t)
    return out


def _compositions(transform: Any) -> list[Any]:
    import albumentations as A

    out = []
    for t in getattr(transform, "transforms", []):
        if isinstance(t, A.BaseCompose):
            out += [t, *_compositions(t)]
    return out


# ---------------------------------------------------------------------------------------------
# speed: an image-only twin of a pipeline, and reseeding without building new generators

_IMAGE_ONLY: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def image_only(transform: Any) -> Any:
    """The same pipeline without box and keypoint processing, for an image that has no targets.

    Built once per pipeline object from its serialized form (its own transform objects, so the
    two never share random state) and cached. Seeded alike, it draws exactly what ``transform``
    draws (the box processor takes no random numbers; tests/test_augmentation_replay.py compares
    the bytes), and it skips what a bare albumentations loop does not pay either. A pipeline that
    cannot be serialized (``A.Lambda``) keeps its box processing.
    """
    import albumentations as A

    if isinstance(transform, A.Compose) and not transform.processors:
        return transform
    twin = _IMAGE_ONLY.get(transform)
    if twin is None:
        try:
            data = A.to_dict(transform if isinstance(transform, A.Compose) else A.Compose([transform]))
            data["transform"].update(bbox_params=None, keypoint_params=None)
            twin = A.from_dict(data)
        except Exception:  # noqa: BLE001 - not serializable: the full pipeline works for images alone too
            twin = target_aware(transform)
        _IMAGE_ONLY[transform] = twin
    return twin


# how a seed reaches the transforms, recorded with each offline pipeline so --verify regenerates
# older outputs too: "shared" was albumentations' set_random_seed (one seed for every transform)
SEEDING = "stream-per-transform"
SEEDINGS = (SEEDING, "shared")
# each object's numpy stream starts this far along the one PCG64 stream of the seed: streams that far
# apart never meet within any run (2**64 draws each), and advancing is cheaper than a new generator
STREAM_GAP = 2 ** 64


def reseed(transform: Any, seed: int) -> None:
    """Seed a pipeline: the Compose and every composition and transform in it get a stream of their own.

    albumentations' ``set_random_seed(seed)`` gives every transform the same ``seed``, so each
    makes the same first draw, ``random() < p``, to decide whether it applies: transforms then
    apply together or not at all (with ``p`` 0.5 and 0.3, the second never without the first), and
    a third of the images of a preset came out untouched. Here object ``i`` (in the order
    Compose, its compositions, its transforms) gets the PCG64 stream of ``seed`` advanced by
    ``i * STREAM_GAP`` and ``random.Random(seed * 65537 + i)``: independent draws, the same for the
    same seed. Existing generators get the new states (cheaper than new generators: this is paid
    once per derived image); shared or missing ones are replaced first.
    """
    objects = [transform, *_compositions(transform), *leaves(transform)]
    seen_numpy: set[int] = set()
    seen_python: set[int] = set()
    base = np.random.PCG64(seed).state
    for index, obj in enumerate(objects):
        numpy_generator = getattr(obj, "random_generator", None)
        if (not isinstance(numpy_generator, np.random.Generator) or id(numpy_generator) in seen_numpy
                or not isinstance(numpy_generator.bit_generator, np.random.PCG64)):
            numpy_generator = obj.random_generator = np.random.Generator(np.random.PCG64())
        python_generator = getattr(obj, "py_random", None)
        if type(python_generator) is not random.Random or id(python_generator) in seen_python:
            python_generator = obj.py_random = random.Random()
        seen_numpy.add(id(numpy_generator))
        seen_python.add(id(python_generator))
        obj.seed = seed
        numpy_generator.bit_generator.state = base
        if index:
            numpy_generator.bit_generator.advance(index * STREAM_GAP)
        python_generator.seed(seed * 65537 + index)


# ---------------------------------------------------------------------------------------------
# applied parameters: recording and replay

# arrays up to this many values are recorded whole (matrices, kernels); larger ones (a noise map the
# size of the image) by shape, dtype and hash, with the random state that regenerates them
_MAX_RECORDED_ARRAY = 256
RANDOM_STATE = "random_state"
# Transforms whose applied parameters are a few numbers or a 3x3 matrix whatever their arguments and
# the image size (tests/test_augmentation_replay.py checks each): their random state is not
# captured, which saves a copy of Python's 625-word generator state per transform and image. Any
# other transform has it captured, kept only when its parameters hold a large array.
SMALL_PARAMS = frozenset({
    "HorizontalFlip", "VerticalFlip", "Transpose", "RandomRotate90", "D4", "Affine", "ShiftScaleRotate", "Rotate",
    "SafeRotate", "Perspective", "CropAndPad", "RandomCrop", "CenterCrop", "RandomResizedCrop", "RandomSizedCrop",
    "Resize", "LongestMaxSize", "SmallestMaxSize", "PadIfNeeded", "RandomScale", "RandomBrightnessContrast",
    "RandomGamma", "ColorJitter", "HueSaturationValue", "RGBShift", "ToGray", "ToSepia", "InvertImg", "Posterize",
    "Solarize", "Equalize", "CLAHE", "ChannelShuffle", "NoOp",
})


@dataclass(frozen=True)
class Unrecorded:
    """A parameter array recorded by shape, dtype and hash only; replay regenerates it."""

    shape: tuple[int, ...]
    dtype: str
    sha256: str


def _array_hash(value: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


def _has_large_array(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.size > _MAX_RECORDED_ARRAY
    if isinstance(value, dict):
        return any(_has_large_array(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_large_array(v) for v in value)
    return False


def _pack_state(state: tuple[dict[str, Any], tuple]) -> dict[str, Any]:
    """JSON form of a transform's (numpy, python) random state; the python one as base64 words."""
    numpy_state, (version, words, gauss) = state
    return {"numpy": numpy_state,
            "python": {"version": version, "words": base64.b64encode(np.asarray(words, dtype=np.uint32).tobytes())
                       .decode("ascii"), "gauss": gauss}}


def _unpack_state(packed: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
    python = packed["python"]
    words = tuple(int(w) for w in np.frombuffer(base64.b64decode(python["words"]), dtype=np.uint32))
    return packed["numpy"], (python["version"], words, python["gauss"])


def encode_applied(applied: list[dict[str, Any]] | None) -> Any:
    """JSON-ready applied parameters: arrays and tuples tagged so :func:`decode_applied` restores them."""
    plain = {int, float, str, bool, type(None)}

    def enc(value: Any) -> Any:
        kind = type(value)
        if kind in plain:
            return value
        if kind is dict:
            return {str(k): enc(v) for k, v in value.items()}
        if kind is tuple:
            return {"__tuple__": [enc(v) for v in value]}
        if isinstance(value, np.ndarray):
            if value.size <= _MAX_RECORDED_ARRAY:
                return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
            return {"__ndarray__": None, "dtype": str(value.dtype), "shape": list(value.shape),
                    "sha256": _array_hash(value)}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, tuple):
            return {"__tuple__": [enc(v) for v in value]}
        if isinstance(value, list):
            return [enc(v) for v in value]
        if isinstance(value, dict):
            return {str(k): enc(v) for k, v in value.items()}
        if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
            return value.value  # enums
        return value

    return None if applied is None else enc(applied)


def decode_applied(data: Any) -> list[dict[str, Any]]:
    """The applied parameters :func:`encode_applied` wrote.

    An array recorded by hash only becomes an :class:`Unrecorded` that replay regenerates from the
    step's recorded random state; without one (manifests written before it was recorded) it
    raises, naming the transform.
    """

    def dec(value: Any, where: str, regenerable: bool) -> Any:
        if isinstance(value, dict):
            if "__ndarray__" in value:
                if value["__ndarray__"] is None:
                    if regenerable:
                        return Unrecorded(tuple(value.get("shape") or ()), str(value["dtype"]), str(value["sha256"]))
                    raise DatakitError(f"{where}: array of shape {value.get('shape')} was not recorded (too large) "
                                       "and no random state was recorded with it; this transform is replayed from "
                                       "the seed only")
                return np.asarray(value["__ndarray__"], dtype=value["dtype"])
            if "__tuple__" in value:
                return tuple(dec(v, where, regenerable) for v in value["__tuple__"])
            return {k: dec(v, f"{where}.{k}", regenerable) for k, v in value.items()}
        if isinstance(value, list):
            return [dec(v, where, regenerable) for v in value]
        return value

    return [{**step, "params": dec(step["params"], f"{step['name']}.params", RANDOM_STATE in step)} for step in data]


def _regenerate(step: Any, recorded: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The step's parameters drawn again from its recorded random state; checked against the hashes."""
    numpy_state, python_state = _unpack_state(recorded[RANDOM_STATE])
    step.random_generator.bit_generator.state = numpy_state
    step.py_random.setstate(python_state)
    fresh = step.get_params()
    fresh = step.update_transform_params(params=fresh, data=data)
    fresh.update(step.get_params_dependent_on_data(params=fresh, data=data))

    def fill(old: Any, new: Any, where: str) -> Any:
        if isinstance(old, Unrecorded):
            if (not isinstance(new, np.ndarray) or tuple(new.shape) != old.shape or str(new.dtype) != old.dtype
                    or _array_hash(new) != old.sha256):
                raise DatakitError(f"replay: {where} regenerated from the recorded random state differs from the "
                                   "recorded one (another albumentations version?)")
            return new
        if isinstance(old, dict) and isinstance(new, dict):
            return {k: fill(v, new.get(k), f"{where}.{k}") for k, v in old.items()}
        if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)) and len(old) == len(new):
            return type(old)(fill(a, b, where) for a, b in zip(old, new))
        return old

    return fill(recorded["params"], fresh, f"{recorded['name']}.params")


def _needs_regeneration(value: Any) -> bool:
    if isinstance(value, Unrecorded):
        return True
    if isinstance(value, dict):
        return any(_needs_regeneration(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_needs_regeneration(v) for v in value)
    return False


def apply(transform: Any, sample: Sample, replay: list[dict[str, Any]] | None = None,
          seed: int | None = None, seeding: str = SEEDING) -> Result:
    """Run ``transform`` on the image and every target of ``sample`` in one call.

    With ``replay`` (a result's ``applied``, or :func:`decode_applied` of its JSON), the transforms
    apply exactly those parameters instead of drawing new ones. With ``seed``, the pipeline is
    reseeded first, and an image with no boxes, masks or semantic mask goes through the
    pipeline's image-only twin (:func:`image_only`), which draws the same. ``seeding`` "shared"
    seeds as outputs made before :func:`reseed` gave each transform its own stream.
    """
    if seed is not None and not len(sample.boxes) and sample.masks is None and sample.semantic_mask is None:
        transform = image_only(transform)
    else:
        transform = target_aware(transform)
    if seed is not None and seeding == "shared":
        transform.set_random_seed(seed)
    elif seed is not None:
        reseed(transform, seed)
    steps = leaves(transform)
    states: dict[int, tuple[dict[str, Any], tuple]] = {}
    patched: list[tuple[Any, str]] = []
    if replay is None:
        for index, step in enumerate(steps):
            step.params = {}  # a transform a OneOf did not choose keeps its old params otherwise
            if type(step).__name__ not in SMALL_PARAMS:
                # the step's random state as it starts drawing: what regenerates a parameter too
                # large to record (kept only for such steps, see _applied)
                step.get_params = _capturing(step, step.get_params, states, index)
                patched.append((step, "get_params"))
    else:
        by_index = {int(r["index"]): r for r in replay}
        for index, step in enumerate(steps):
            recorded = by_index.get(index)
            if recorded is not None and recorded["name"] != type(step).__name__:
                raise DatakitError(f"replay: transform {index} is {type(step).__name__} but the parameters were "
                                   f"recorded for {recorded['name']}; not the same pipeline")
            step.replay_mode = True
            step.applied_in_replay = recorded is not None
            step.params = dict(recorded["params"]) if recorded is not None else {}
            if recorded is not None and _needs_regeneration(recorded["params"]):
                step.apply_with_params = _regenerating(step, step.apply_with_params, recorded)
                patched.append((step, "apply_with_params"))
        for composition in _compositions(transform):
            composition.replay_mode = True
    try:
        return _apply(transform, sample, steps, states)
    finally:
        for step, name in patched:
            step.__dict__.pop(name, None)
        if replay is not None:
            for step in [*steps, *_compositions(transform)]:
                step.replay_mode = False


def _capturing(step: Any, get_params: Any, states: dict[int, Any], index: int) -> Any:
    def get_params_capturing() -> dict[str, Any]:
        states[index] = (step.random_generator.bit_generator.state, step.py_random.getstate())
        return get_params()

    return get_params_capturing


def _regenerating(step: Any, apply_with_params: Any, recorded: dict[str, Any]) -> Any:
    def apply_regenerated(params: dict[str, Any], *args: Any, **data: Any) -> Any:
        return apply_with_params(_regenerate(step, recorded, data), *args, **data)

    return apply_regenerated


def _applied(steps: list[Any], states: dict[int, Any]) -> list[dict[str, Any]]:
    applied = []
    for i, step in enumerate(steps):
        if step.params:
            entry = {"index": i, "name": type(step).__name__, "params": dict(step.params)}
            if i in states and _has_large_array(step.params):
                entry[RANDOM_STATE] = _pack_state(states[i])
            applied.append(entry)
    return applied


def _apply(transform: Any, sample: Sample, steps: list[Any], states: dict[int, Any]) -> Result:
    if not transform.processors and not len(sample.boxes) and sample.masks is None and sample.semantic_mask is None:
        # the image-only twin on an image without targets: nothing to clip, filter or recompute
        image = transform(image=sample.image)["image"]
        return Result(sample=Sample(image=image), kept=np.zeros((0,), dtype=np.int64), dropped=[],
                      applied=_applied(steps, states))
    height, width = sample.image.shape[:2]
    boxes = _clip_to_image(sample.boxes, width, height)
    valid = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    dropped = [DroppedObject(int(i), REASON_INVALID_INPUT) for i in np.flatnonzero(~valid)]
    indices = np.flatnonzero(valid)

    inputs: dict[str, Any] = {"image": sample.image}
    if transform.processors:  # not the image-only twin
        inputs.update({"bboxes": boxes[indices], _INDEX_FIELD: indices.tolist()})
    if sample.masks is not None and len(sample.masks):
        inputs["masks"] = sample.masks
    if sample.semantic_mask is not None:
        inputs["mask"] = sample.semantic_mask
    out = transform(**inputs)

    kept = np.asarray(out.get(_INDEX_FIELD, ()), dtype=np.int64).reshape(-1)
    filtered = sorted(set(indices.tolist()) - set(kept.tolist()))
    dropped += [DroppedObject(int(i), REASON_FILTERED) for i in filtered]
    new_boxes = np.asarray(out.get("bboxes", ()), dtype=np.float64).reshape(-1, 4)
    new_masks = None
    if sample.masks is not None:
        image_out = out["image"]
        if "masks" in out:
            all_masks = np.asarray(out["masks"], dtype=np.uint8).reshape(len(sample.masks), *image_out.shape[:2])
        else:
            all_masks = np.zeros((0, *image_out.shape[:2]), dtype=np.uint8)
        new_masks = all_masks[kept] if len(kept) else np.zeros((0, *image_out.shape[:2]), dtype=np.uint8)
        from_masks, present = mask_boxes(new_masks)
        dropped += [DroppedObject(int(i), REASON_MASK_GONE) for i in kept[~present]]
        new_boxes, new_masks, kept = from_masks[present], new_masks[present], kept[present]

    dropped.sort(key=lambda d: d.index)
    result_sample = Sample(
        image=out["image"],
        boxes=new_boxes,
        labels=sample.labels[kept] if len(kept) else np.zeros((0,), dtype=np.int64),
        masks=new_masks,
        semantic_mask=out.get("mask") if sample.semantic_mask is not None else None,
    )
    out_height, out_width = result_sample.image.shape[:2]
    clipped = (_touches_border(result_sample.boxes, out_width, out_height)
               & ~_touches_border(boxes[kept], width, height)) if len(kept) else np.zeros((0,), dtype=bool)
    return Result(sample=result_sample, kept=kept, dropped=dropped, applied=_applied(steps, states), clipped=clipped)
