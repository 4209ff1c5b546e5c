"""tasks.json: the task metadata reports read instead of importing task code (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pvm_bench.errors import FileFormatError
from pvm_bench.runner.taskmeta import read_task_file, spec_metrics, write_task_file
from pvm_bench.tasks import Sample, get_registry
from pvm_bench.tasks.metrics import unit_values


def _samples(metas: list[dict]) -> list[Sample]:
    return [Sample(id=str(i), question="q", target="A", metadata=m) for i, m in enumerate(metas)]


@pytest.mark.parametrize("name,metas", [
    ("mmbench_en", [{"index": i} for i in (0, 1000000, 2000000, 1, 1000001, 7, 1000007, 3000007)]),
    ("mmstar", [{"l2_category": c} for c in "aabbbcab"]),
])
def test_grouped_metrics_read_from_data_equal_the_task_code(tmp_path: Path, name: str, metas: list[dict]) -> None:
    """CircularEval (unit + require) and MMStar's category average (stratum), rebuilt from the
    per-sample values in tasks.json, give the same units as the built-in task's functions."""
    task = get_registry(entry_points=False).tasks[name]
    samples = _samples(metas)
    write_task_file(tmp_path, [(task, samples)])
    spec = read_task_file(tmp_path).tasks[name]
    rebuilt, warnings = spec_metrics(spec)
    assert warnings == [] and [m.name for m in rebuilt] == [m.name for m in task.metrics()]
    assert spec.headline == task.headline_metric().name and spec.source == "builtin"
    infos = [{**s.metadata, "sample_id": s.id} for s in samples]
    scores = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    for ours, theirs in zip(rebuilt, task.metrics()):
        got = {str(k): v for k, v in unit_values(ours, infos, scores).items()}
        want = {str(k): (None if s is None else str(s), v) for k, (s, v) in unit_values(theirs, infos, scores).items()}
        assert got == want, ours.name


def test_an_edited_tasks_json_is_one_line(tmp_path: Path) -> None:
    task = get_registry(entry_points=False).tasks["mmstar"]
    path = write_task_file(tmp_path, [(task, _samples([{"l2_category": "a"}]))])
    doc = json.loads(path.read_text())
    doc["tasks"]["mmstar"]["metrics"][0]["higher_is_better"] = "false"
    path.write_text(json.dumps(doc))
    with pytest.raises(FileFormatError, match="tasks.json.*higher_is_better"):
        read_task_file(tmp_path)


def test_a_run_without_tasks_json_reports_built_in_tasks_and_notes_the_rest(tmp_path: Path) -> None:
    """Runs made before tasks.json existed: built-in tasks keep their declared metrics (package
    code); any other task gets the default accuracy and a note -- no plugin is imported."""
    from pvm_bench.report.rows import task_infos
    from pvm_bench.report.rundata import load_run
    from pvm_bench.results import JsonlAppender, RunRecord, SampleRecord

    RunRecord(run_id="old", status="completed", variants=["base"]).save(tmp_path)
    with JsonlAppender(tmp_path / "samples.jsonl") as out:
        for task in ("mmstar", "my_plugin_task"):
            for i in range(3):
                out.append(SampleRecord(variant="base", task=task, sample_id=str(i), seed=0, prompt="p", output="o",
                                        score=1.0, n_generated=3, metadata={"l2_category": "ab"[i % 2]}))
    data = load_run(tmp_path)
    infos = task_infos(data)
    from pvm_bench.tasks import get_registry

    (mmstar,) = get_registry(entry_points=False).resolve(["mmstar"])
    assert [m.name for m in infos["mmstar"].metrics] == [m.name for m in mmstar.metrics()]  # the package's declaration
    assert [m.name for m in infos["my_plugin_task"].metrics] == ["accuracy"]
    assert any("my_plugin_task" in w and "no tasks.json" in w for w in data.warnings)
