"""Reliability rows of issue 20 (security, report-side integrity): reading a run is inert.

Same sandbox as :mod:`cases` (:class:`conftest.Env`). A row states the exit code, words of the
output (of its one ``error:`` line for codes 2 and 3), words that must not appear, files that must
stay byte-identical, and an extra check. Classes and their one mechanism:

- plugins: reports read ``RUN/tasks.json`` / ``thumbnails.json`` (pvm_bench.runner.taskmeta, runmedia);
- symlinks: every run-file writer goes through pvm_bench.safeio;
- image paths: pvm_bench.data.imageroot;
- markdown: pvm_bench.report.mdtext.md_escape;
- concurrent reports: the report lock + unique temp names (runguard.RunLock, safeio.temp_beside);
- baselines: pvm_bench.report.baseline_schema; data fingerprints in check;
- counts: rundata.count_problem;
- outputs: pvm_bench.report.outputs (exit 3).
"""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .cases import Case
from .conftest import RUN_ARGS

EVIL_TASK = "quiz<img src=x onerror=alert(1)>"
EVIL_METRIC = "acc<script>alert(2)</script>"


def inert(
    case_id: str,
    argv: Callable[..., list[str]],
    code: int,
    words: tuple[str, ...] = (),
    absent: tuple[str, ...] = (),
    unchanged: tuple[str, ...] = (),
    check: Callable[..., None] | None = None,
) -> Case:
    """A row of this table as a :class:`cases.Case`: one ``error:`` line holding ``words`` for exit
    codes 2 and 3; ``words`` anywhere in the output for 0 and 1 (``check: FAIL``, per-sample errors)."""
    return Case(
        case_id,
        argv,
        code,
        words,
        unchanged=unchanged,
        absent=absent,
        one_error_line=code in (2, 3),
        words_in_output=code in (0, 1),
        check=check,
    )


# ----------------------------------------------------------------- plugin runs
PLUGIN = """
import pathlib
from PIL import Image
from pvm_bench.tasks.base import LazyImage, Metric, Sample, Score, Task

HERE = pathlib.Path(__file__).parent
(HERE / "imported.mark").touch()
print("PLUGIN-IMPORTED")


class Quiz(Task):
    name = {name!r}
    metric = {metric!r}
    description = "a plugin task generating red squares"

    def load(self, split=None, limit=None, data_dir=None):
        (HERE / "loaded.mark").touch()
        img = Image.new("RGB", (32, 32), (200, 0, 0))
        return [Sample(id=str(i), question="What colour is this square?", target="red", images=[LazyImage(img)],
                       metadata={{"kind": "odd" if i % 2 else "even"}}) for i in range(4)]

    def score(self, sample, output, *, truncated=False):
        return Score(value=float("red" in output.lower()))

    def metrics(self):
        return [Metric({metric!r}, stratum=lambda info: info["kind"], description="mean over kinds")]


TASKS = [Quiz()]
"""


def _plugin_run(env, name: str = "quiz", metric: str = "quiz_balanced", run_id: str = "r") -> Path:
    """A run of a plugin task (plugins run only at `run` time) from its own folder ``plugins-RUN_ID``
    (so no in-process cache keyed by the folder can hide an import); its markers removed."""
    plugins = env.root / f"plugins-{run_id}"
    plugins.mkdir(exist_ok=True)
    (plugins / "quiz.py").write_text(PLUGIN.format(name=name, metric=metric))
    code, output = env.cli(
        "run",
        "--model",
        str(env.model),
        "--tasks",
        name,
        "--include-path",
        str(plugins),
        "--out",
        str(env.out),
        "--run-id",
        run_id,
        *RUN_ARGS,
    )
    assert code == 0, output
    _forget_markers(env)
    return env.out / run_id


def _forget_markers(env) -> None:
    for mark in env.root.glob("plugins-*/*.mark"):
        mark.unlink()


def _not_executed(env) -> None:
    marks = sorted(str(m.relative_to(env.root)) for m in env.root.glob("plugins-*/*.mark"))
    assert not marks, f"the plugin ran at report time ({marks})"


def _plugin_metric_reported(env) -> None:
    _not_executed(env)
    md = (env.out / "r" / "summary.md").read_text()
    assert "quiz_balanced" in md, md  # the plugin's declared metric, read from tasks.json


def report_plugin_run(env) -> list[str]:
    return ["report", str(_plugin_run(env))]


def report_plugin_gone(env) -> list[str]:
    run = _plugin_run(env)
    (env.root / "plugins-r" / "quiz.py").write_text("raise SystemExit('the plugin must not be imported')\n")
    return ["report", str(run)]


def baseline_plugin_run(env) -> list[str]:
    return ["baseline", str(_plugin_run(env)), "-o", str(env.root / "b.json")]


def compare_plugin_run(env) -> list[str]:
    # Each run has its plugin in its own folder, so their task definitions differ by origin.
    return ["compare", str(_plugin_run(env)), str(_plugin_run(env, run_id="r2")), "--allow-task-change"]


def check_plugin_run(env) -> list[str]:
    code, output = env.cli("baseline", str(_plugin_run(env, run_id="base")), "-o", str(env.root / "b.json"))
    assert code == 0, output
    run = _plugin_run(env)
    return ["check", str(run), "--baseline", str(env.root / "b.json"), "--alpha", "0"]


def _baseline_has_metric(env) -> None:
    _not_executed(env)
    assert "quiz_balanced" in (env.root / "b.json").read_text()


# ----------------------------------------------------------------- symlinks
def _outside(env) -> Path:
    victim = env.root / "victim.txt"
    victim.write_text("precious\n")
    return victim


def lock_symlink(env) -> list[str]:
    run = env.make_run()
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(_outside(env))
    return ["run", "--resume", str(run), "--quiet"]


def samples_symlink(env) -> list[str]:
    run = env.make_run()
    victim = _outside(env)
    victim.write_text((run / "samples.jsonl").read_text())
    (run / "samples.jsonl").unlink()
    (run / "samples.jsonl").symlink_to(victim)
    return ["run", "--resume", str(run), "--quiet"]


def plots_symlink(env) -> list[str]:
    run = env.make_run(drop_last=False)
    (env.root / "elsewhere").mkdir()
    shutil.rmtree(run / "plots", ignore_errors=True)
    (run / "plots").symlink_to(env.root / "elsewhere")
    return ["report", str(run)]


def _nothing_elsewhere(env) -> None:
    assert list((env.root / "elsewhere").iterdir()) == []


def report_html_symlink(env) -> list[str]:
    run = env.make_run(drop_last=False)
    (run / "report.html").symlink_to(_outside(env))
    return ["report", str(run)]


def _link_replaced(env) -> None:
    path = env.out / "r" / "report.html"
    assert not path.is_symlink() and "<html" in path.read_text()


# ----------------------------------------------------------------- image paths
def _jsonl_data(env, image: str, *, secret: bool = True) -> Path:
    """mmstar as val.jsonl whose first row's image is ``image`` (the others: files next to it)."""
    from PIL import Image

    folder = env.data / "mmstar"
    frame = pd.read_parquet(folder / "val.parquet")
    (folder / "val.parquet").unlink()
    (folder / "img").mkdir()
    rows = []
    for i, row in frame.iterrows():
        Image.new("RGB", (24, 24), (0, 0, 200)).save(folder / "img" / f"{i}.png")
        rows.append({k: (f"img/{i}.png" if k == "image" else v) for k, v in row.items()})
    rows[0]["image"] = image
    if secret:
        Image.new("RGB", (24, 24), (1, 2, 3)).save(env.root / "secret.png")
    (folder / "val.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    return env.data


def image_absolute_outside(env) -> list[str]:
    _jsonl_data(env, str(env.root / "secret.png"))
    return env.run_args()


def image_relative_outside(env) -> list[str]:
    _jsonl_data(env, "../../secret.png")  # data/mmstar/../../secret.png = the sandbox root
    return env.run_args()


def image_outside_allowed(env) -> list[str]:
    _jsonl_data(env, "../../secret.png")
    return env.run_args("r", "--allow-outside-data", "--report")


def image_relative_inside(env) -> list[str]:
    _jsonl_data(env, "img/0.png", secret=False)  # relative to the data file's folder, not the cwd
    return env.run_args()


def _secret_not_embedded(env) -> None:
    thumbs = (env.out / "r" / "thumbnails.json").read_text()
    record = json.loads((env.out / "r" / "samples.jsonl").read_text().splitlines()[0])
    assert record["error"] and "leaves the data directory" in record["error"]
    assert thumbs.count("data:image") == 2, thumbs[:200]  # rows 1 and 2 only


def _secret_read(env) -> None:
    record = json.loads((env.out / "r" / "samples.jsonl").read_text().splitlines()[0])
    assert not record["error"]
    assert (env.out / "r" / "thumbnails.json").read_text().count("data:image") == 3


# ----------------------------------------------------------------- markdown
def _evil_run(env, run_id: str = "r") -> Path:
    return _plugin_run(env, name=EVIL_TASK, metric=EVIL_METRIC, run_id=run_id)


def md_summary(env) -> list[str]:
    return ["report", str(_evil_run(env))]


def _summary_md_inert(env) -> None:
    md = (env.out / "r" / "summary.md").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "<img" not in md and "<script" not in md


def md_compare(env) -> list[str]:
    return ["compare", str(_evil_run(env)), str(_evil_run(env, "r2")), "--allow-task-change"]


def md_check(env) -> list[str]:
    run = _evil_run(env)
    code, output = env.cli("baseline", str(run), "-o", str(env.root / "b.json"))
    assert code == 0, output
    return [
        "check",
        str(run),
        "--baseline",
        str(env.root / "b.json"),
        "--alpha",
        "0",
        "--markdown",
        str(env.root / "step.md"),
    ]


def _check_md_inert(env) -> None:
    md = (env.root / "step.md").read_text()
    assert "check: PASS" in md and "&lt;script&gt;" in md and "<img" not in md and "<script" not in md


# ----------------------------------------------------------------- counts, baselines
def _cut_last_line(run: Path) -> None:
    path = run / "samples.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 40])  # the last record cut mid-line


def report_cut_line(env) -> list[str]:
    run = env.make_run(drop_last=False)
    _cut_last_line(run)
    return ["report", str(run)]


def _summary_says_mismatch(env) -> None:
    md = (env.out / "r" / "summary.md").read_text()
    assert md.splitlines()[2].startswith("> **RECORD COUNT MISMATCH: run.json counts 3 records"), md[:400]


def _baseline(env, run: Path, name: str = "b.json") -> Path:
    code, output = env.cli("baseline", str(run), "-o", str(env.root / name))
    assert code == 0, output
    return env.root / name


def check_cut_line(env) -> list[str]:
    run = env.make_run(drop_last=False)
    base = _baseline(env, run)
    _cut_last_line(run)
    return ["check", str(run), "--baseline", str(base)]


def baseline_cut_line(env) -> list[str]:
    run = env.make_run(drop_last=False)
    _cut_last_line(run)
    return ["baseline", str(run), "-o", str(env.root / "b.json")]


def _edit_baseline(change: Callable[[dict], None]) -> Callable[..., list[str]]:
    def argv(env) -> list[str]:
        run = env.make_run(drop_last=False)
        path = _baseline(env, run)
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc))
        return ["check", str(run), "--baseline", str(path)]

    return argv


def _first_metric(**fields: object) -> Callable[[dict], None]:
    return lambda doc: doc["metrics"][0].update(fields)


def _other_data(env) -> Path:
    """A run of the same task ids on other data (a changed question), and its baseline."""
    run = env.make_run("other", drop_last=False)
    base = _baseline(env, run)
    path = env.data / "mmstar" / "val.parquet"
    frame = pd.read_parquet(path)
    frame.loc[0, "question"] = "What is the main colour of this picture, really?\nOptions: A: red"
    frame.to_parquet(path, index=False)
    return base


def check_other_data(env) -> list[str]:
    base = _other_data(env)
    return ["check", str(env.make_run(drop_last=False)), "--baseline", str(base), "--alpha", "0"]


def check_other_data_allowed(env) -> list[str]:
    return [*check_other_data(env), "--allow-data-change"]


# ----------------------------------------------------------------- concurrent reports
def stale_temp_name(env) -> list[str]:
    """Another writer's temp file under the old shared name: the report uses its own."""
    run = env.make_run(drop_last=False)
    (run / ".summary.csv.tmp").mkdir()
    (run / ".report.html.tmp").write_text("another report's half-written page")
    return ["report", str(run)]


# ----------------------------------------------------------------- outputs (exit 3)
def _read_only(env) -> None:
    """Every atomic write fails as on a read-only filesystem (root ignores chmod)."""
    import tempfile

    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, A002
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    tempfile.mkstemp = refuse
    env.cleanups.append(lambda: setattr(tempfile, "mkstemp", real))


def report_read_only(env) -> list[str]:
    run = env.make_run(drop_last=False)
    _read_only(env)
    return ["report", str(run)]


def baseline_read_only(env) -> list[str]:
    run = env.make_run(drop_last=False)
    _read_only(env)
    return ["baseline", str(run), "-o", str(env.root / "b.json")]


def compare_read_only(env) -> list[str]:
    run = env.make_run(drop_last=False)
    _read_only(env)
    return ["compare", str(run), str(run), "-o", str(env.root / "cmp.md")]


def baseline_onto_directory(env) -> list[str]:
    run = env.make_run(drop_last=False)
    (env.root / "b.json").mkdir()
    return ["baseline", str(run), "-o", str(env.root / "b.json")]


def compare_onto_directory(env) -> list[str]:
    run = env.make_run(drop_last=False)
    (env.root / "cmp.md").mkdir()
    return ["compare", str(run), str(run), "-o", str(env.root / "cmp.md")]


def _check_markdown_into(target: Callable[[Path], Path]) -> Callable[..., list[str]]:
    def argv(env) -> list[str]:
        run = env.make_run(drop_last=False)
        base = _baseline(env, run)
        return ["check", str(run), "--baseline", str(base), "--alpha", "0", "--markdown", str(target(env.root))]

    return argv


def _a_directory(root: Path) -> Path:
    (root / "summary.md").mkdir()
    return root / "summary.md"


# ----------------------------------------------------------------- attention files
def _attention(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[..., list[str]]:
    def argv(env) -> list[str]:
        from pvm_bench.attention_store import attention_dataset

        run = env.make_run("r", "--probes", "attention", drop_last=False)
        for path in attention_dataset(run):  # an edited store file: its aggregate tables are stale
            change(pd.read_parquet(path)).to_parquet(path, index=False)
        return ["report", str(run)]

    return argv


def _string_layers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(layer=[f"layer-{x}" for x in frame["layer"]])


def _infinite_mass(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(visual_mass=float("inf"))


RUN = ("out/r/run.json", "out/r/samples.jsonl")
NOT_IMPORTED = ("PLUGIN-IMPORTED", "Traceback")

INERT_CASES: list[Case] = [
    # security: reading a run executes nothing from it
    inert(
        "inert-report-no-plugin-import", report_plugin_run, 0, ("report:",), NOT_IMPORTED, check=_plugin_metric_reported
    ),
    inert("inert-report-plugin-gone", report_plugin_gone, 0, ("report:",), NOT_IMPORTED, check=_plugin_metric_reported),
    inert(
        "inert-baseline-no-plugin-import",
        baseline_plugin_run,
        0,
        ("baseline:",),
        NOT_IMPORTED,
        check=_baseline_has_metric,
    ),
    inert(
        "inert-compare-no-plugin-import", compare_plugin_run, 0, ("quiz_balanced",), NOT_IMPORTED, check=_not_executed
    ),
    inert("inert-check-no-plugin-import", check_plugin_run, 0, ("check: PASS",), NOT_IMPORTED, check=_not_executed),
    # security: symlinks in a run directory are never written through
    inert(
        "inert-lock-symlink",
        lock_symlink,
        2,
        (".lock is a symbolic link", "remove the link"),
        unchanged=("victim.txt", *RUN),
    ),
    inert(
        "inert-samples-symlink", samples_symlink, 2, ("samples.jsonl is a symbolic link",), unchanged=("victim.txt",)
    ),
    inert("inert-plots-symlink", plots_symlink, 2, ("plots is a symbolic link",), check=_nothing_elsewhere),
    inert(
        "inert-report-html-symlink",
        report_html_symlink,
        0,
        ("report:",),
        unchanged=("victim.txt",),
        check=_link_replaced,
    ),
    # security: image paths stay in the data root
    inert(
        "inert-image-absolute-outside",
        image_absolute_outside,
        1,
        ("leaves the data directory", "--allow-outside-data"),
        unchanged=("secret.png",),
        check=_secret_not_embedded,
    ),
    inert(
        "inert-image-relative-outside",
        image_relative_outside,
        1,
        ("../../secret.png", "leaves the data directory"),
        check=_secret_not_embedded,
    ),
    inert("inert-image-outside-allowed", image_outside_allowed, 0, ("report:",), check=_secret_read),
    inert("inert-image-relative-to-data-file", image_relative_inside, 0, (), ("error:",)),
    # security: markdown carries no HTML from names
    inert("inert-md-summary", md_summary, 0, ("summary:",), check=_summary_md_inert),
    inert("inert-md-compare", md_compare, 0, ("&lt;img src=x onerror=alert(1)&gt;",), ("<img", "<script")),
    inert("inert-md-check", md_check, 0, ("check: PASS",), check=_check_md_inert),
    # integrity: record counts
    inert("inert-report-cut-last-line", report_cut_line, 0, ("RECORD COUNT MISMATCH",), check=_summary_says_mismatch),
    inert("inert-check-cut-last-line", check_cut_line, 1, ("check: FAIL", "RECORD COUNT MISMATCH")),
    inert("inert-baseline-cut-last-line", baseline_cut_line, 2, ("RECORD COUNT MISMATCH", "--allow-partial")),
    # integrity: baselines
    inert("inert-baseline-empty", _edit_baseline(lambda d: d.update(metrics=[])), 2, ("has no metrics",)),
    inert(
        "inert-baseline-source-string",
        _edit_baseline(lambda d: d.update(source="x")),
        2,
        ("source: must be a JSON object",),
        ("AttributeError",),
    ),
    inert(
        "inert-baseline-hib-string",
        _edit_baseline(_first_metric(higher_is_better="false")),
        2,
        ("metrics[0].higher_is_better", "JSON boolean"),
    ),
    inert(
        "inert-baseline-huge-ci",
        _edit_baseline(_first_metric(ci_low=-1e308, ci_high=1e308)),
        2,
        ("metrics[0]", "implausibly wide"),
    ),
    inert("inert-check-other-data", check_other_data, 1, ("check: FAIL", "data differs", "--allow-data-change")),
    inert("inert-check-other-data-allowed", check_other_data_allowed, 0, ("check: PASS", "data differs")),
    # integrity: concurrent reports never share a temp file
    inert("inert-report-stale-temp-names", stale_temp_name, 0, ("report:",)),
    # outputs: exit 3, one line, distinct from a regression (1)
    inert("inert-report-read-only", report_read_only, 3, ("cannot write", "read-only")),
    inert("inert-baseline-read-only", baseline_read_only, 3, ("cannot write the baseline", "read-only")),
    inert("inert-compare-read-only", compare_read_only, 3, ("cannot write the comparison", "read-only")),
    inert("inert-baseline-onto-directory", baseline_onto_directory, 3, ("b.json", "directory")),
    inert("inert-compare-onto-directory", compare_onto_directory, 3, ("cmp.md", "directory")),
    inert(
        "inert-check-markdown-missing-dir",
        _check_markdown_into(lambda r: r / "no" / "such" / "step.md"),
        3,
        ("cannot write the check summary", "does not exist"),
    ),
    inert(
        "inert-check-markdown-directory",
        _check_markdown_into(_a_directory),
        3,
        ("cannot write the check summary", "directory"),
    ),
    # report of bad attention files: a note, not a traceback
    # issue 20: one line naming the column and the fix, exit 2 (issue 22: a section that cannot be computed
    # fails the report unless --allow-partial)
    inert(
        "inert-attention-string-layers",
        _attention(_string_layers),
        2,
        ("'layer' holds VARCHAR values, not numbers", "--allow-partial"),
        ("Traceback",),
    ),
    inert("inert-attention-infinite-mass", _attention(_infinite_mass), 0, ("report:",)),
]
