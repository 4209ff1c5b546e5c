"""Benchmark data: tables from the hub or a ``--data-dir``, images, and their offline export.

Owns loading rows (:mod:`~pvm_bench.data.tables`), cheap checks of user files
(:mod:`~pvm_bench.data.filecheck`), decoding images (:mod:`~pvm_bench.data.images`), where image paths
may point (:mod:`~pvm_bench.data.imageroot`), and ``pvm-bench data export|check``
(:mod:`~pvm_bench.data.export`, :mod:`~pvm_bench.data.commands`). The loading modules import only
errors and third-party libraries (the Task API builds on them); export and commands may import tasks,
the runner's checks and the CLI helpers.
"""

from pvm_bench.data.imageroot import ImagePathError, ImageRoot, image_root
from pvm_bench.data.images import MAX_IMAGE_PIXELS, CorruptImageError, load_image, max_image_pixels
from pvm_bench.data.tables import find_local_file, load_rows

__all__ = [
    "MAX_IMAGE_PIXELS", "CorruptImageError", "ImagePathError", "ImageRoot", "find_local_file", "image_root",
    "load_image", "load_rows", "max_image_pixels",
]
