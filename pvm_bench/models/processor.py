"""Building a family's processor, including on machines without torchvision.

transformers' multimodal processors insist on a video processor, and video processors need
torchvision. pvm-bench only feeds images, so when AutoProcessor cannot build the processor we
assemble it from the tokenizer and the (PIL) image processor with ``video_processor=None``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

from transformers.utils import PushToHubMixin

from pvm_bench.models.families import FamilySpec


class ImageOnlyVideoProcessor(PushToHubMixin):
    """Stands in for a video processor that cannot be built (no torchvision).

    Carries the attributes a family's processor reads even for image-only input
    (:attr:`FamilySpec.video_processor_defaults`); any attempt to process video fails clearly.
    The processor's ``repr``/``to_dict``/``save_pretrained`` treat it like a plain settings dict.
    """

    _auto_class = None

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "video input needs the family's video processor, which needs torchvision; "
            "install the torchvision release matching your torch"
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextlib.contextmanager
def _allow_missing_components() -> Iterator[None]:
    """Let ProcessorMixin accept ``None`` (or the image-only stand-in) for the video processor."""
    from transformers.processing_utils import ProcessorMixin

    original = ProcessorMixin.check_argument_for_proper_class

    def check(self: Any, name: str, arg: Any) -> Any:
        if arg is None or isinstance(arg, ImageOnlyVideoProcessor):
            return None
        return original(self, name, arg)

    ProcessorMixin.check_argument_for_proper_class = check  # type: ignore[method-assign]
    try:
        yield
    finally:
        ProcessorMixin.check_argument_for_proper_class = original  # type: ignore[method-assign]


def load_processor(source: str, spec: FamilySpec, **hub_kwargs: Any) -> Any:
    """Load the processor for ``source`` (hub id or directory) of family ``spec``.

    Tries ``AutoProcessor`` first; if that fails only because a video processor (torchvision)
    is unavailable, builds ``spec.processor_class`` from AutoTokenizer + AutoImageProcessor.
    """
    import transformers
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(source, **hub_kwargs)
    except (ImportError, AttributeError, ValueError, TypeError, OSError) as exc:
        if isinstance(exc, OSError) and "torchvision" not in str(exc).lower():
            raise
        # Fall through to manual assembly; real problems resurface below with their own error.
    tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs)
    extra = _processor_config(source, hub_kwargs)
    image_processor = AutoImageProcessor.from_pretrained(source, **hub_kwargs)
    processor_cls = getattr(transformers, spec.processor_class)
    components: dict[str, Any] = {"image_processor": image_processor, "tokenizer": tokenizer}
    if "video_processor" in inspect.signature(processor_cls.__init__).parameters:
        defaults = spec.video_processor_defaults
        components["video_processor"] = ImageOnlyVideoProcessor(**defaults) if defaults else None
    with _allow_missing_components():
        return processor_cls(**components, chat_template=getattr(tokenizer, "chat_template", None), **extra)


def _processor_config(source: str, hub_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The processor's own settings (``processor_config.json``) minus class bookkeeping."""
    import json

    from transformers.utils import cached_file

    path = cached_file(source, "processor_config.json", _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if path is None:
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return {k: v for k, v in data.items() if k not in ("processor_class", "auto_map") and not k.endswith("_processor")}


def pixel_limits(processor: Any, spec: FamilySpec) -> tuple[int | None, int | None]:
    """The (min, max) pixel counts ``processor`` resizes images into; (None, None) for families
    that resize to a fixed size (``spec.pixel_limit_keys`` is None)."""
    if spec.pixel_limit_keys is None:
        return None, None
    size = _size_dict(getattr(processor, "image_processor", processor))
    low, high = (size.get(key) for key in spec.pixel_limit_keys)
    return (None if low is None else int(low)), (None if high is None else int(high))


def apply_pixel_limits(
    processor: Any, spec: FamilySpec, min_pixels: int | None, max_pixels: int | None
) -> tuple[int | None, int | None]:
    """Bound the number of pixels each image is resized into (``None``: keep the processor's).

    For Qwen2/2.5/3-VL (``pixel_limit_keys = ("shortest_edge", "longest_edge")``) transformers'
    image processor resizes every image with ``smart_resize(h, w, factor=patch*merge,
    min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])``
    (transformers/models/qwen2_vl/image_processing_qwen2_vl.py), the same target size
    qwen_vl_utils 0.0.14 ``fetch_image`` computes from an image's ``min_pixels``/``max_pixels``
    (vision_process.py lines 130-139), which is how lmms-eval applies them. Only the resampling
    filter implementation may differ by a few grey levels. Changes ``processor`` in place and
    returns the effective (min, max).

    Raises:
        UserError: limits for a fixed-size family, or min > max.
    """
    from pvm_bench.errors import UserError

    if min_pixels is None and max_pixels is None:
        return pixel_limits(processor, spec)
    if spec.pixel_limit_keys is None:
        raise UserError(
            f"--min-pixels/--max-pixels apply to dynamic-resolution families (Qwen2-VL, Qwen2.5-VL, Qwen3-VL); "
            f"{spec.name} resizes images to a fixed size: drop them"
        )
    image_processor = getattr(processor, "image_processor", processor)
    size = _size_dict(image_processor)
    low_key, high_key = spec.pixel_limit_keys
    if min_pixels is not None:
        size[low_key] = int(min_pixels)
    if max_pixels is not None:
        size[high_key] = int(max_pixels)
    if size.get(low_key) is not None and size.get(high_key) is not None and size[low_key] > size[high_key]:
        raise UserError(
            f"--min-pixels {size[low_key]} is above --max-pixels {size[high_key]} (with the processor's own value for "
            "the one not given); pass min <= max"
        )
    current = image_processor.size
    # Keep the processor's own type (a SizeDict dataclass in transformers 5, a dict before).
    image_processor.size = type(current)(**size) if not isinstance(current, dict) else size
    return pixel_limits(processor, spec)


def _size_dict(image_processor: Any) -> dict[str, Any]:
    size = getattr(image_processor, "size", None) or {}
    items = size.items() if isinstance(size, dict) else vars(size).items()
    return {k: v for k, v in items if v is not None}
