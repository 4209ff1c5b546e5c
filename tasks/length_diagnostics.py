"""Length-controlled diagnostics: read a colour off the image after a controlled stretch of text.

Synthetic and offline: every example is generated with PIL from a seed, no files needed. All text
is plain ASCII (the model organism's tokenizer is ``string.printable`` characters), and images
are tiny (64x64 px by default: with patch 16 / merge 2 each 32 px cell of the default 2x2 grid is
exactly one merged visual token).

The image is a grid of ``rows x cols`` coloured cells; colours come from :data:`PALETTE`. Cells
are numbered 1..rows*cols left to right, top to bottom (cell 1 = top left).

Variants (tasks):

``colour_recall`` (*generated* distance)
    prompt   ``"Count to N, then name the colour of cell k."``
    response ``"1 2 3 ... N\\nAnswer: <colour>"`` (for N = 0 just ``"Answer: <colour>"``)
    The model itself writes the filler, so the answer comes ``distance`` characters after the
    end of the prompt, and the prompt controls that distance.
``colour_recall_given`` (*given* distance)
    prompt   ``"Numbers: 1 2 3 ... N.\\nName the colour of cell k."``
    response ``"Answer: <colour>"``
    The filler is in the prompt, between the image and the question.

``distance`` (metadata, characters = tokens for the character-level organism) is the number of
characters between the end of the image block and the start of the answer colour word: the length
of the generated text before the colour word (generated variant) or the length of the preamble
(given variant).

Splits: ``train`` N in [0, 16] (short; seed 0), ``test`` N in [0, 64] (seed 1),
``long`` N in [65, 160] (seed 2). Train on short distances, measure accuracy and visual attention
against distance on ``test``/``long``.

Trainer contract -- :func:`make_examples`::

    make_examples(n, seed, distance_range=(0, 16), variant="generated", grid=(2, 2), image_size=64)
      -> list of n dicts with keys
         image     PIL.Image.Image, RGB, image_size x image_size
         prompt    str  (ASCII; the user text, the image goes before it)
         response  str  (ASCII; the full target completion, ending with the colour word)
         answer    str  (the colour word, one of PALETTE)
         cell      int  (1-based cell asked about)
         n_filler  int  (N, drawn uniformly from distance_range, inclusive)
         distance  int  (characters between image and answer word, see above)
         colours   list[str] (the colour of every cell, row-major)
         variant   str  ("generated" or "given")

It is deterministic in (n, seed, distance_range, variant, grid, image_size). Score: exact match
of the colour word after the last ``Answer:`` marker (or the first word when there is no
marker); an output cut off before ``Answer:`` is ``truncated``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageDraw

from pvm_bench.scoring import prepare_output, truncated_score
from pvm_bench.tasks import LazyImage, Sample, Score, Task, TaskError

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 40),
    "purple": (150, 60, 180),
}
SPLITS: dict[str, tuple[tuple[int, int], int, int]] = {
    # split: (N range inclusive, seed, default size)
    "train": ((0, 16), 0, 2000),
    "test": ((0, 64), 1, 200),
    "long": ((65, 160), 2, 200),
}
DISTANCE_BUCKETS = (32, 64, 128, 256, 512)
_MARKER = re.compile(r"answer\s*:", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+")


def filler(n: int) -> str:
    """The counting filler ``"1 2 ... n"`` ("" for n = 0)."""
    return " ".join(str(i) for i in range(1, n + 1))


def draw_grid(colours: Sequence[str], grid: tuple[int, int] = (2, 2), image_size: int = 64) -> Image.Image:
    """An RGB image of ``grid`` = (rows, cols) cells filled with the named colours (row-major)."""
    rows, cols = grid
    if len(colours) != rows * cols:
        raise ValueError(f"need {rows * cols} colours for a {rows}x{cols} grid, got {len(colours)}")
    img = Image.new("RGB", (image_size, image_size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for idx, name in enumerate(colours):
        r, c = divmod(idx, cols)
        x0, y0 = c * image_size // cols, r * image_size // rows
        x1, y1 = (c + 1) * image_size // cols - 1, (r + 1) * image_size // rows - 1
        draw.rectangle([x0, y0, x1, y1], fill=PALETTE[name])
    return img


def make_example(rng: random.Random, distance_range: tuple[int, int], variant: str = "generated",
                 grid: tuple[int, int] = (2, 2), image_size: int = 64) -> dict[str, Any]:
    """One example drawn with ``rng`` (see the module docstring for the keys)."""
    lo, hi = distance_range
    if lo < 0 or hi < lo:
        raise ValueError(f"distance_range must be 0 <= lo <= hi, got {distance_range}")
    names = list(PALETTE)
    n_cells = grid[0] * grid[1]
    colours = [rng.choice(names) for _ in range(n_cells)]
    cell = rng.randint(1, n_cells)
    n = rng.randint(lo, hi)
    answer = colours[cell - 1]
    fill = filler(n)
    if variant == "generated":
        prompt = f"Count to {n}, then name the colour of cell {cell}."
        head = f"{fill}\nAnswer: " if n else "Answer: "
        response = head + answer
        distance = len(prompt) + len(head)
    elif variant == "given":
        preamble = f"Numbers: {fill}.\n" if n else ""
        prompt = f"{preamble}Name the colour of cell {cell}."
        head = "Answer: "
        response = head + answer
        distance = len(prompt) + len(head)
    else:
        raise ValueError(f"unknown variant '{variant}'; use 'generated' or 'given'")
    return {
        "image": draw_grid(colours, grid, image_size), "prompt": prompt, "response": response, "answer": answer,
        "cell": cell, "n_filler": n, "distance": distance, "colours": colours, "variant": variant,
    }


def make_examples(n: int, seed: int, distance_range: tuple[int, int] = (0, 16), variant: str = "generated",
                  grid: tuple[int, int] = (2, 2), image_size: int = 64) -> list[dict[str, Any]]:
    """``n`` deterministic (image, prompt, response, ...) training/eval triples; see module doc."""
    rng = random.Random(f"colour_recall:{variant}:{seed}")
    return [make_example(rng, distance_range, variant, grid, image_size) for _ in range(n)]


def parse_colour(text: str) -> tuple[str | None, bool]:
    """(colour word after the last ``Answer:`` marker, marker found)."""
    matches = list(_MARKER.finditer(text))
    span = text[matches[-1].end():] if matches else text
    word = _WORD.search(span)
    return (word.group(0).lower() if word else None), bool(matches)


class ColourRecall(Task):
    """Read the colour of cell k after a controlled amount of generated or given text."""

    version = "1.0"
    splits = tuple(SPLITS)
    default_split = "test"
    hub_id = None
    generation = {"max_new_tokens": 768}

    def __init__(self, variant: Literal["generated", "given"] = "generated", name: str | None = None,
                 grid: tuple[int, int] = (2, 2), image_size: int = 64) -> None:
        self.variant = variant
        self.grid = grid
        self.image_size = image_size
        self.name = name or ("colour_recall" if variant == "generated" else "colour_recall_given")
        where = "written by the model" if variant == "generated" else "given in the prompt"
        self.description = f"Synthetic: name the colour of a grid cell after N counting numbers {where} (accuracy vs distance)"
        self.generation = {"max_new_tokens": 768 if variant == "generated" else 32}

    def load(self, split: str | None = None, limit: int | None = None, data_dir: Path | None = None) -> list[Sample]:
        split = split or self.default_split
        if split not in SPLITS:
            raise TaskError(f"task '{self.name}': unknown split '{split}'; choose from {', '.join(SPLITS)}")
        distance_range, seed, size = SPLITS[split]
        n = size if limit is None else min(limit, size)
        examples = make_examples(n, seed, distance_range, self.variant, self.grid, self.image_size)
        samples = []
        for i, ex in enumerate(examples):
            sid = f"{self.name}-{split}-{i}"
            samples.append(Sample(
                id=sid, question=ex["prompt"], target=ex["answer"],
                images=[LazyImage(ex["image"], name=f"{self.name} sample {sid} image")], choices=list(PALETTE),
                metadata={k: ex[k] for k in ("cell", "n_filler", "distance", "colours", "variant", "response")},
            ))
        return samples

    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output)
        details: dict[str, Any] = {"distance": sample.metadata.get("distance"), "n_filler": sample.metadata.get("n_filler"),
                                   "extractor": "last 'Answer:' colour word"}
        if prep.unfinished_reasoning:
            return truncated_score(reason="ended inside a reasoning block", **details)
        colour, marker = parse_colour(prep.text)
        if self.variant == "generated":
            expected = filler(int(sample.metadata["n_filler"]))
            head = _MARKER.split(prep.text)[0].strip() if marker else None
            details["filler_ok"] = head == expected
        if truncated and not marker:
            return truncated_score(**details)
        return Score(value=float(colour == sample.target), parsed=colour, details=details)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        out = super().aggregate(scores)
        lo = 0
        for hi in (*DISTANCE_BUCKETS, None):
            bucket = [s.value for s in scores if (s.details.get("distance") or 0) >= lo and (hi is None or s.details["distance"] < hi)]
            if bucket:
                out[f"accuracy@d{lo}-{hi if hi is not None else 'inf'}"] = sum(bucket) / len(bucket)
            lo = hi if hi is not None else lo
        return out


TASKS = [ColourRecall("generated"), ColourRecall("given")]
GROUPS = {"length-diagnostics": ["colour_recall", "colour_recall_given"]}
