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
