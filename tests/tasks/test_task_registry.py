"""Task discovery (built-in, --include-path, entry points) and the one-clear-error cases."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pvm_bench.tasks import CorruptImageError, TaskError, get_registry

BUILTIN = {
    "mmmu", "mmmu_qwen3vl", "mathvista", "mathvista_cot", "mathvista_solution", "mathverse", "mathverse_text_dominant",
    "mathvision", "mmstar", "mmstar_qwen3vl", "ai2d", "mmbench_en", "mmbench_cn", "hallusionbench", "mmt",
    "colour_recall", "colour_recall_given", "swatch_recall", "swatch_recall_given",
}

USER_MODULE = '''
from pvm_bench.tasks.base import Sample, Score, Task

class Echo(Task):
    name = "{name}"
    description = "user task"
    def load(self, split=None, limit=None, data_dir=None):
        return [Sample(id="e1", question="say hi", target="hi")]
    def score(self, sample, output, *, truncated=False):
        return Score(value=float(output.strip() == sample.target))

TASKS = [Echo()]
GROUPS = {{"{name}-group": ["{name}", "mmmu"]}}
'''


def test_builtin_tasks_and_paper_group() -> None:
    reg = get_registry(entry_points=False)
    assert BUILTIN <= set(reg.tasks)
    paper = [t.name for t in reg.resolve(["pvm-paper"])]
    assert paper == ["mmmu_dev_qwen3vl", "mmbench_cn_lite", "mmbench_en_lite", "mmstar_qwen3vl", "mmt_emo",
                     "mathverse_vision", "mathvision", "ai2d_lite"]
    for task in reg.tasks.values():
        assert task.description and task.splits and task.default_split in task.splits


def test_include_path_user_module(tmp_path: Path) -> None:
    (tmp_path / "my_tasks.py").write_text(USER_MODULE.format(name="echo_user"))
    reg = get_registry(include_paths=[tmp_path], entry_points=False)
    task = reg.tasks["echo_user"]
    assert str(tmp_path) in reg.origins["echo_user"]
    sample = task.load()[0]
    assert task.score(sample, " hi ").value == 1.0
    assert [t.name for t in reg.resolve(["echo_user-group"])] == ["echo_user", "mmmu"]


def test_entry_point_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "acme_tasks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(USER_MODULE.format(name="echo_ep"))
    dist = tmp_path / "acme_tasks-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tasks\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pvm_bench.tasks]\nacme = acme_tasks\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = get_registry()
    assert reg.origins["echo_ep"] == "entry point acme"
    assert reg.tasks["echo_ep"].load()[0].target == "hi"


def test_unknown_task_error() -> None:
    reg = get_registry(entry_points=False)
    with pytest.raises(TaskError, match=r"^unknown task 'nope'; `pvm-bench tasks` lists the tasks and groups$"):
        reg.resolve(["nope"])
    with pytest.raises(TaskError, match=r"^unknown task 'mathvistta'; did you mean 'mathvista'") as err:
        reg.resolve(["mathvistta"])
    assert "hallusionbench" not in str(err.value)  # close matches only, never every known name


@pytest.mark.parametrize(("args", "line"), [
    (["--tasks", "mmmuu"], "error: unknown task 'mmmuu'; did you mean 'mmmu'"),
    (["--tasks", "pvm-papr"], "error: unknown task 'pvm-papr'; did you mean 'pvm-paper'?"),
    (["--probes", "atention"], "error: unknown probe 'atention'; did you mean 'attention'?"),
    (["--variants", "base,pvmm"], "error: unknown variant 'pvmm'; did you mean 'pvm'? (in 'pvmm')"),
])
def test_cli_suggests_close_names(tmp_path: Path, args: list[str], line: str) -> None:
    """A typo in a task, group, probe or variant name: one line with the close matches, exit 2 (a task
    name is checked before the organism's "needs a model", and before any run directory exists)."""
    from typer.testing import CliRunner

    from pvm_bench.cli.main import app

    result = CliRunner().invoke(app, ["run", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = [entry for entry in result.output.splitlines() if entry.strip()]
    assert len(lines) == 1 and lines[0].startswith(line), result.output
    if args[0] == "--tasks":
        assert not any(tmp_path.iterdir())


def test_generic_registry_lazy_refs_entry_points_and_suggestions(tmp_path: Path, monkeypatch) -> None:
    """One Registry[T]: a "module:attr" reference is imported on first lookup, an entry point of its
    group is found, an unknown name gets close matches only."""
    from pvm_bench.registry import PluginLoadError, Registry

    (tmp_path / "acme_probe.py").write_text("FACTORY = object()\n")
    dist = tmp_path / "acme_probe-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-probe\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pvm_bench.test_group]\nacme = acme_probe:FACTORY\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[object] = Registry(
        "widget", "pvm_bench.test_group", {"json_dumps": "json:dumps", "bad": "no_such_mod:x"}
    )
    import json

    assert reg["json_dumps"] is json.dumps
    import acme_probe

    assert "acme" in reg and reg["acme"] is acme_probe.FACTORY
    assert sorted(reg) == ["acme", "bad", "json_dumps"]
    with pytest.raises(PluginLoadError, match="widget 'bad' \\(no_such_mod:x\\) cannot be loaded"):
        reg["bad"]
    assert reg.unknown("json_dump") == "unknown widget 'json_dump'; did you mean 'json_dumps'?"
    assert reg.unknown("zzz") == "unknown widget 'zzz'"


def test_no_data_offline_error() -> None:
    # conftest sets HF_HUB_OFFLINE=1; no --data-dir given
    task = get_registry(entry_points=False).tasks["mmstar"]
    with pytest.raises(TaskError, match=r"cannot load Lin-Chen/MMStar.*--data-dir"):
        task.load(limit=1)


def test_missing_local_file_error(tmp_path: Path) -> None:
    task = get_registry(entry_points=False).tasks["ai2d"]
    with pytest.raises(TaskError, match=r"no test.parquet"):
        task.load(data_dir=tmp_path)


@pytest.mark.parametrize(
    ("task_name", "folder", "split", "row", "match"),
    [
        (
            "mmmu",
            "mmmu",
            "validation",
            {
                "id": "validation_Art_5",
                "question": "q <image 1>",
                "options": "['a','b']",
                "question_type": "multiple-choice",
            },
            r"validation_Art_5 lacks answer",
        ),
        (
            "mmmu",
            "mmmu",
            "validation",
            {
                "id": "validation_Art_6",
                "question": "q <image 1>",
                "options": "['a','b']",
                "answer": "A",
                "question_type": "multiple-choice",
            },
            r"references <image 1> but has no image_1",
        ),
        ("mathvista", "mathvista", "testmini", {"pid": "9", "question": "q"}, r"record 9 lacks question_type"),
        ("mmstar", "mmstar", "val", {"index": 3, "question": "q"}, r"record 3 lacks answer, image"),
    ],
)
def test_malformed_record_error(tmp_path: Path, task_name: str, folder: str, split: str, row: dict, match: str) -> None:
    (tmp_path / folder).mkdir()
    pd.DataFrame([row]).to_parquet(tmp_path / folder / f"{split}.parquet")
    task = get_registry(entry_points=False).tasks[task_name]
    with pytest.raises(TaskError, match=match):
        task.load(data_dir=tmp_path)


def test_corrupt_image_names_sample(fixture_data: Path) -> None:
    task = get_registry(entry_points=False).tasks["mmmu"]
    samples = task.load(data_dir=fixture_data / "corrupt")
    assert len(samples) == 1  # loading is lazy: the bad bytes fail only when decoded
    with pytest.raises(CorruptImageError, match=r"validation_Art_99"):
        samples[0].images[0].load()


def test_builtin_tasks_are_the_first_include_path() -> None:
    """The built-in benchmarks are the files of the top-level tasks/ folder, loaded by the include-path
    loader (no pvm_bench.builtin_tasks package to import); a registry's tasks are its own (a judge set
    on one does not leak to the next)."""
    import importlib.util

    from pvm_bench.tasks.registry import builtin_task_dir

    assert builtin_task_dir() == Path(__file__).resolve().parents[2] / "tasks"
    assert importlib.util.find_spec("pvm_bench.builtin_tasks") is None
    reg = get_registry(entry_points=False)
    assert reg.origins["mmmu"] == "builtin tasks/mmmu.py"
    assert reg.origins["swatch_recall"] == "builtin tasks/length_diagnostics.py"
    files = {p.name for p in builtin_task_dir().glob("*.py")}
    assert {o.removeprefix("builtin tasks/") for o in reg.origins.values()} <= files
    # the same loader as --include-path: the folder given as an include path defines the same tasks
    other = get_registry([builtin_task_dir()], entry_points=False, override_tasks=[*reg.tasks, *reg.groups])
    assert set(other.tasks) == set(reg.tasks) and not other.conflicts
    reg.tasks["mathvista"].set_judge("a judge")
    assert get_registry(entry_points=False).tasks["mathvista"].judge is None
