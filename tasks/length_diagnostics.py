"""Length-controlled diagnostics: read a colour off the image after a controlled stretch of text.

Synthetic and offline: every example is generated with PIL from a seed, no files needed. All text
is plain ASCII (the model organism's tokenizer is ``string.printable`` characters), and images
are tiny (64x64 px by default: with patch 16 / merge 2 each 32 px cell of a 2x2 grid is exactly
one merged visual token).

An example is described by a :class:`Design`:

``grid``     the image is ``rows x cols`` coloured cells, numbered 1..rows*cols left to right,
             top to bottom. A 1x1 grid is a plain colour swatch and the question names no cell.
``palette``  ``basic`` (5 well separated colours) or ``fine`` (12 colours with close pairs such
             as blue/navy or teal/cyan, so the answer needs a clean visual signal).
``count``    the filler counts ``up`` ("1 2 ... N", the model must stop at N: a look-back into
             the prompt) or ``down`` ("N ... 2 1", the stop is local, so the only long-range
             dependency left is the image).
``variant``  where the filler is:

    ``generated`` prompt ``"Count to N, then name the colour of cell k."`` (or ``"Count down
                  from N to 1, ..."``), response ``"<filler>\\nAnswer: <colour>"``. The model
                  writes the filler itself, so the prompt controls how far into its own answer
                  the colour word comes.
    ``given``     prompt ``"Numbers: <filler>.\\nName the colour of cell k."``, response
                  ``"Answer: <colour>"``: the filler sits between the image and the question.

``distance`` (metadata, characters = tokens for the character-level organism) is the number of
characters between the end of the image block and the start of the answer colour word.

Tasks: ``colour_recall`` / ``colour_recall_given`` (2x2 grid, basic palette, count up: a spatial
lookup, for real VLMs) and ``swatch_recall`` / ``swatch_recall_given`` (1x1 swatch, fine palette,
count down: what the built-in model organism is trained and evaluated on), and
``two_swatch_recall`` (two swatches of different colours, "name the colour of the first image"
after counting down: a multi-image diagnostic for per-image visual mass; the organism was never
trained on two images).

Splits: ``train`` N in [0, 16] (short; seed 0), ``test`` N in [0, 64] (seed 1),
``long`` N in [65, 160] (seed 2). Train on short distances, measure accuracy and visual attention
against distance on ``test``/``long``.

Trainer contract -- :func:`make_examples`::

    make_examples(n, seed, distance_range=(0, 16), design=None, **design_fields)
      -> list of n dicts with keys
         image     PIL.Image.Image, RGB, image_size x image_size
         prompt    str  (ASCII; the user text, the image goes before it)
         response  str  (ASCII; the full target completion, ending with the colour word)
         answer    str  (the colour word, one of the design's palette)
         cell      int  (1-based cell asked about)
         n_filler  int  (N, drawn uniformly from distance_range, inclusive)
         distance  int  (characters between image and answer word, see above)
         colours   list[str] (the colour of every cell, row-major)
         variant   str  ("generated" or "given")
         count     str  ("up" or "down")
         images    list[PIL.Image.Image] (``[image]``, or both swatches when ``n_images == 2``)

It is deterministic in (n, seed, distance_range, design). Score: exact match of the colour word
after the last ``Answer:`` marker (or the first word when there is no marker); an output cut off
before ``Answer:`` is ``truncated``; ``filler_ok`` says whether the generated filler was exact.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageDraw

from pvm_bench.scoring import prepare_output, truncated_score
from pvm_bench.tasks import LazyImage, Metric, Sample, Score, Task, TaskError

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 40),
    "purple": (150, 60, 180),
}
#: 12 colours with close pairs (orange/yellow, lime/green, teal/cyan, blue/navy, purple/pink).
FINE_PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "orange": (240, 140, 30), "yellow": (235, 205, 40), "lime": (150, 210, 40),
    "green": (40, 170, 60), "teal": (30, 150, 150), "cyan": (60, 200, 230), "blue": (40, 80, 220),
    "navy": (30, 40, 120), "purple": (150, 60, 180), "pink": (240, 120, 180), "brown": (140, 90, 40),
}
PALETTES: dict[str, dict[str, tuple[int, int, int]]] = {"basic": PALETTE, "fine": FINE_PALETTE}
_RGB = {**PALETTE, **FINE_PALETTE}  # shared names have the same RGB in both palettes
SPLITS: dict[str, tuple[tuple[int, int], int, int]] = {
    # split: (N range inclusive, seed, default size)
    "train": ((0, 16), 0, 2000),
    "test": ((0, 64), 1, 200),
    "long": ((65, 160), 2, 200),
}
DISTANCE_BUCKETS = (32, 64, 128, 256, 512)
_MARKER = re.compile(r"answer\s*:", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+")
#: What a multi-image design's answer names (one 0/1 sub-score ``answer_<kind>`` each, exactly one is 1):
#: the first image's colour, the second's, another palette colour, or no colour (nothing parsed, a word
#: outside the palette, or cut off before an answer).
ANSWER_KINDS = ("first", "second", "other", "none")
_KIND_TEXT = {"first": "the first image's colour", "second": "the second image's colour",
              "other": "a colour of neither image", "none": "no colour (nothing parsed or cut off)"}


@dataclass(frozen=True)
class Design:
    """What an example looks like (see the module docstring); everything but the seed and N."""

    variant: Literal["generated", "given"] = "generated"
    grid: tuple[int, int] = (2, 2)
    count: Literal["up", "down"] = "up"
    palette: str = "basic"
    image_size: int = 64
    #: 2 = two swatches (two images, different colours) and the question asks about the FIRST:
    #: the per-image / multi-image diagnostic (needs grid (1, 1)).
    n_images: int = 1

    def __post_init__(self) -> None:
        if self.variant not in ("generated", "given"):
            raise ValueError(f"unknown variant '{self.variant}'; use 'generated' or 'given'")
        if self.count not in ("up", "down"):
            raise ValueError(f"unknown count '{self.count}'; use 'up' or 'down'")
        if self.palette not in PALETTES:
            raise ValueError(f"unknown palette '{self.palette}'; use one of {', '.join(PALETTES)}")
        object.__setattr__(self, "grid", tuple(self.grid))
        if self.n_images not in (1, 2) or (self.n_images == 2 and self.grid != (1, 1)):
            raise ValueError("n_images must be 1, or 2 with a 1x1 grid (two swatches)")

    @property
    def colours(self) -> list[str]:
        return list(PALETTES[self.palette])


def filler(n: int, count: str = "up") -> str:
    """The counting filler: ``"1 2 ... n"`` (``count="up"``) or ``"n ... 2 1"`` (``"down"``); "" for n = 0."""
    numbers = range(1, n + 1) if count == "up" else range(n, 0, -1)
    return " ".join(str(i) for i in numbers)


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
        draw.rectangle([x0, y0, x1, y1], fill=_RGB[name])
    return img


def make_example(rng: random.Random, distance_range: tuple[int, int], design: Design = Design()) -> dict[str, Any]:
    """One example drawn with ``rng`` (see the module docstring for the keys)."""
    lo, hi = distance_range
    if lo < 0 or hi < lo:
        raise ValueError(f"distance_range must be 0 <= lo <= hi, got {distance_range}")
    n_cells = design.grid[0] * design.grid[1]
    colours = [rng.choice(design.colours) for _ in range(n_cells)]
    cell = rng.randint(1, n_cells)
    n = rng.randint(lo, hi)
    answer = colours[cell - 1]
    fill = filler(n, design.count)
    target = "the image" if n_cells == 1 else f"cell {cell}"
    images = [draw_grid(colours, design.grid, design.image_size)]
    if design.n_images == 2:  # a second swatch of another colour; the question is about the first
        second = rng.choice([c for c in design.colours if c != answer])
        images.append(draw_grid([second], design.grid, design.image_size))
        colours = [answer, second]
        target = "the first image"
    if design.variant == "generated":
        how = f"Count to {n}" if design.count == "up" else f"Count down from {n} to 1"
        prompt = f"{how}, then name the colour of {target}."
        head = f"{fill}\nAnswer: " if n else "Answer: "
    else:
        preamble = f"Numbers: {fill}.\n" if n else ""
        prompt = f"{preamble}Name the colour of {target}."
        head = "Answer: "
    return {
        "image": images[0], "images": images, "prompt": prompt, "response": head + answer,
        "answer": answer, "cell": cell, "n_filler": n, "distance": len(prompt) + len(head), "colours": colours,
        "variant": design.variant, "count": design.count,
    }


def make_examples(n: int, seed: int, distance_range: tuple[int, int] = (0, 16), design: Design | None = None,
                  **design_fields: Any) -> list[dict[str, Any]]:
    """``n`` deterministic (image, prompt, response, ...) training/eval triples; see module doc.

    ``design_fields`` (``variant=``, ``grid=``, ...) override fields of ``design`` (default
    :class:`Design`).
    """
    design = replace(design or Design(), **design_fields)
    rng = random.Random(f"colour_recall:{design.variant}:{seed}")
    return [make_example(rng, distance_range, design) for _ in range(n)]


def parse_colour(text: str) -> tuple[str | None, bool]:
    """(colour word after the last ``Answer:`` marker, marker found)."""
    matches = list(_MARKER.finditer(text))
    span = text[matches[-1].end():] if matches else text
    word = _WORD.search(span)
    return (word.group(0).lower() if word else None), bool(matches)


class ColourRecall(Task):
    """Read the colour of the image (or of cell k) after a controlled amount of generated or given text."""

    version = "1.1"
    distance_key = "n_filler"
    distance_label = "N (numbers counted before the answer)"
    splits = tuple(SPLITS)
    default_split = "test"
    hub_id = None

    def __init__(self, name: str, design: Design = Design()) -> None:
        self.name = name
        self.design = design
        if design.n_images == 2:
            what = "the first of two colour swatches (two images)"
        elif design.grid == (1, 1):
            what = "a colour swatch"
        else:
            what = f"a cell of a {design.grid[0]}x{design.grid[1]} grid"
        where = "written by the model" if design.variant == "generated" else "given in the prompt"
        self.description = (f"Synthetic: name the colour of {what} ({design.palette} palette) after N numbers counted "
                            f"{design.count}, {where} (accuracy vs distance)")
        self.generation = {"max_new_tokens": 768 if design.variant == "generated" else 32}
        if design.n_images == 2:
            self.version = "1.2"  # 1.2: records carry the answer_<kind> sub-scores (old runs lack them)

    def metrics(self) -> list[Metric]:
        """Accuracy; for two swatches also the share of answers naming each swatch (:data:`ANSWER_KINDS`),
        descriptive rates that sum to 1 per variant (every scored record has all four sub-scores)."""
        out = super().metrics()
        if self.design.n_images == 2:
            out += [Metric(f"answer_{k}", higher_is_better=None, subscore=f"answer_{k}",
                           description=f"share of answers naming {_KIND_TEXT[k]}") for k in ANSWER_KINDS]
        return out

    def answer_kind(self, sample: Sample, colour: str | None) -> str:
        """Which of :data:`ANSWER_KINDS` the parsed ``colour`` is for ``sample`` (images in order)."""
        shown = list(sample.metadata.get("colours") or [])
        if colour in shown[:2]:
            return ANSWER_KINDS[shown.index(colour)]
        return "other" if colour in self.design.colours else "none"

    def _with_kind(self, sample: Sample, score: Score, colour: str | None) -> Score:
        """``score`` with the ``answer_<kind>`` sub-scores of a multi-image design (unchanged otherwise)."""
        if self.design.n_images == 2:
            kind = self.answer_kind(sample, colour)
            score.sub_scores.update({f"answer_{k}": float(k == kind) for k in ANSWER_KINDS})
        return score

    def load(self, split: str | None = None, limit: int | None = None, data_dir: Path | None = None) -> list[Sample]:
        split = split or self.default_split
        if split not in SPLITS:
            raise TaskError(f"task '{self.name}': unknown split '{split}'; choose from {', '.join(SPLITS)}")
        distance_range, seed, size = SPLITS[split]
        n = size if limit is None else min(limit, size)
        samples = []
        for i, ex in enumerate(make_examples(n, seed, distance_range, self.design)):
            sid = f"{self.name}-{split}-{i}"
            samples.append(
                Sample(
                    id=sid,
                    question=ex["prompt"],
                    target=ex["answer"],
                    images=[
                        LazyImage(img, name=f"{self.name} sample {sid} image {j + 1}")
                        for j, img in enumerate(ex["images"])
                    ],
                    choices=self.design.colours,
                    metadata={
                        k: ex[k] for k in ("cell", "n_filler", "distance", "colours", "variant", "count", "response")
                    },
                )
            )
        return samples

    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        prep = prepare_output(output, policy=self.unfinished_policy)
        truncated = prep.scores_truncation(truncated)  # lmms-eval: a cut-off output is scored as it is
        details: dict[str, Any] = {
            "distance": sample.metadata.get("distance"),
            "n_filler": sample.metadata.get("n_filler"),
            "extractor": "answer_marker",
        }
        if prep.unanswered:
            return self._with_kind(sample, truncated_score(reason="ended inside a reasoning block", **details), None)
        colour, marker = parse_colour(prep.text)
        # extractor path (contract: exactly "none" when nothing was extracted)
        details["extractor"] = "answer_marker" if marker and colour else "first_word" if colour else "none"
        if self.design.variant == "generated":
            expected = filler(int(sample.metadata["n_filler"]), self.design.count)
            head = _MARKER.split(prep.text)[0].strip() if marker else None
            details["filler_ok"] = head == expected
        if truncated and not marker:
            return self._with_kind(sample, truncated_score(**details), None)
        return self._with_kind(sample, Score(value=float(colour == sample.target), parsed=colour, details=details),
                               colour)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        out = super().aggregate(scores)
        lo = 0
        for hi in (*DISTANCE_BUCKETS, None):
            bucket = [
                s.value
                for s in scores
                if (s.details.get("distance") or 0) >= lo and (hi is None or s.details["distance"] < hi)
            ]
            if bucket:
                out[f"accuracy@d{lo}-{hi if hi is not None else 'inf'}"] = sum(bucket) / len(bucket)
            lo = hi if hi is not None else lo
        return out


SWATCH = Design(grid=(1, 1), count="down", palette="fine")
TWO_SWATCHES = replace(SWATCH, n_images=2)

TASKS = [
    ColourRecall("colour_recall"),
    ColourRecall("colour_recall_given", Design(variant="given")),
    ColourRecall("swatch_recall", SWATCH),
    ColourRecall("swatch_recall_given", replace(SWATCH, variant="given")),
    # Multi-image diagnostic (issue 15): two swatches, the colour of the FIRST after counting down.
    ColourRecall("two_swatch_recall", TWO_SWATCHES),
]
GROUPS = {"length-diagnostics": ["colour_recall", "colour_recall_given", "swatch_recall", "swatch_recall_given"]}


def task_design(name: str) -> Design:
    """The :class:`Design` of the registered task ``name`` (trainers build data from it)."""
    for task in TASKS:
        if task.name == name:
            return task.design
    raise KeyError(f"no length-diagnostics task '{name}'; have {', '.join(t.name for t in TASKS)}")
