"""The README's "Adding a task" example, run exactly as written through the CLI."""

from __future__ import annotations

import io
import re
from pathlib import Path

import datasets
from PIL import Image
from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.results import read_jsonl

README = Path(__file__).resolve().parents[2] / "README.md"


def _task_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```python\n# my_tasks/colour_quiz.py\n(.*?)```", text, re.S)
    assert match, "README lost its task example"
    return match.group(1)


def _png(colour: str) -> dict:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def test_readme_task_example_runs_through_the_cli(tiny_qwen3_vl, tmp_path):
    plugins = tmp_path / "my_tasks"
    plugins.mkdir()
    (plugins / "colour_quiz.py").write_text(_task_example())
    rows = [{"id": f"q{i}", "question": "What colour is the square?", "answer": c, "image": _png(c)}
            for i, c in enumerate(["red", "blue", "green"])]
    features = datasets.Features({"id": datasets.Value("string"), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string"), "image": datasets.Image()})
    (tmp_path / "data" / "colour_quiz").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(
        str(tmp_path / "data" / "colour_quiz" / "test.parquet")
    )

    runner = CliRunner()
    listing = runner.invoke(app, ["tasks", "--include-path", str(plugins)])
    assert listing.exit_code == 0 and "colour_quiz" in listing.output and "my-suite" in listing.output
    result = runner.invoke(app, [
        "run", "--quiet", "--no-report", "--probes", "", "--model", str(tiny_qwen3_vl), "--tasks", "my-suite",
        "--include-path", str(plugins), "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
        "--run-id", "r", "--max-new-tokens", "6",
    ])
    assert result.exit_code == 0, result.output
    records = read_jsonl(tmp_path / "out" / "r" / "samples.jsonl")
    assert sorted(r["sample_id"] for r in records) == ["q0", "q1", "q2"]
    assert {r["target"] for r in records} == {"red", "blue", "green"}
    assert all(r["task"] == "colour_quiz" and r["score"] in (0.0, 1.0) for r in records)


# ------------------------------------------------------------------ every command and flag shown exists

#: Flags the README shows that belong to other programs (pip, torchrun, the official MemVR scripts)
#: or that it names as lmms-eval's flags without an equivalent (cli_options.NO_EQUIVALENT covers those).
FOREIGN_FLAGS = {"--index-url", "--no-deps", "--nproc-per-node", "--nnodes", "--node-rank", "--master-addr",
                 "--master-port", "--vision-retracing", "--no-compile", "--python"}  # pip's, torchrun's, uv's


def _commands() -> dict[str, set[str]]:
    """``{"run": {"--model", ...}, "pvm train": {...}, ...}``: every command path and its options."""
    import typer

    from pvm_bench.cli.support import Command, Context  # typer's own click (vendored in typer >= 0.29)

    out: dict[str, set[str]] = {}

    def walk(command: Command, path: str, ctx: Context) -> None:
        out[path] = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        if hasattr(command, "list_commands"):  # a group
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk(sub, f"{path} {name}".strip(), Context(sub, parent=ctx, info_name=name))

    root = typer.main.get_command(app)
    walk(root, "", Context(root, info_name="pvm-bench"))
    return out


def _flag(token: str) -> str | None:
    """The option name in ``token`` (``--model_args=x`` -> ``--model-args``), None if not a long option."""
    from pvm_bench.cli.options import RENAMES

    token = token.strip("[]()`,.;:")
    if not token.startswith("--") or len(token) < 3 or not token[2].isalpha():
        return None
    name = token.partition("=")[0]
    name = RENAMES.get(name, name)
    return name.replace("_", "-") if "_" in name else name


def _command_lines(text: str) -> list[str]:
    """Every ``pvm-bench ...`` invocation in the README: in bash blocks (continuations joined,
    comments dropped, split at && ; |) and in inline code spans."""
    lines: list[str] = []
    for block in re.findall(r"```(?:bash|yaml)\n(.*?)```", text, re.S):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line)
            lines.extend(re.split(r"&&|;|\|", line))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        lines.extend(part for part in span.split(" / "))
    found = []
    for line in lines:
        line = line.replace("python -m pvm_bench ", "pvm-bench ").replace("-m pvm_bench ", "pvm-bench ")
        if "pvm-bench " in line:
            found.append(line[line.index("pvm-bench "):])
    return found


def test_every_command_and_flag_in_the_readme_exists():
    text = README.read_text(encoding="utf-8")
    commands = _commands()
    problems = []
    shown = _command_lines(text)
    assert len(shown) > 30, shown
    for line in shown:
        tokens = line.split()[1:]
        path = ""
        while tokens and f"{path} {tokens[0]}".strip() in commands:
            path = f"{path} {tokens.pop(0)}".strip()
        if path == "" and tokens and not tokens[0].startswith("-"):
            problems.append(f"unknown command in `{line}`")
            continue
        for token in (part for word in tokens for part in word.split("/")):  # --report/--no-report
            flag = _flag(token)
            if flag and flag not in commands[path] | {"--help"}:
                problems.append(f"`pvm-bench {path}` has no {flag} (README: `{line.strip()}`)")
    assert not problems, "\n".join(problems)


def test_every_flag_in_the_readme_is_a_pvm_bench_option():
    from pvm_bench.cli.options import NO_EQUIVALENT

    text = README.read_text(encoding="utf-8")
    known = set().union(*_commands().values()) | {"--help"} | FOREIGN_FLAGS
    known |= {name.replace("_", "-") for name in NO_EQUIVALENT}
    code = re.findall(r"```(?:bash|yaml|toml)\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text)
    unknown = {
        flag for chunk in code for token in re.split(r"[\s/]+", chunk) if (flag := _flag(token)) and flag not in known
    }
    assert not unknown, f"README shows flags that no command has: {sorted(unknown)}"


def test_every_environment_variable_in_the_readme_is_read_by_the_package():
    text = README.read_text(encoding="utf-8")
    source = "\n".join(p.read_text(encoding="utf-8") for p in (README.parents[0] / "pvm_bench").rglob("*.py"))
    for name in set(re.findall(r"PVM_BENCH_[A-Z_]+", text)):
        assert name in source, f"README names {name}, which pvm_bench never reads"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The "Models" example, with the shipped organism (a Qwen3-VL) and its adapter standing in for
    the hub model and the adapter path, and 8 new tokens instead of 512."""
    from pvm_bench.organism import BASE_DIR, PVM_DIR

    text = README.read_text(encoding="utf-8")
    match = re.search(r"```python\n(from PIL import Image\n.*?)```", text, re.S)
    assert match, "README lost its Python API example"
    code = (match.group(1)
            .replace('"Qwen/Qwen3-VL-4B-Instruct"', repr(str(BASE_DIR)))
            .replace('"path/to/adapter"', repr(str(PVM_DIR)))
            .replace('dtype="bfloat16"', 'dtype="float32"')
            .replace("max_new_tokens=512", "max_new_tokens=8"))
    assert str(BASE_DIR) in code and str(PVM_DIR) in code and "max_new_tokens=8" in code
    Image.new("RGB", (64, 64), "red").save(tmp_path / "square.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (the README's own example)
    outs, m = namespace["outs"], namespace["m"]
    assert len(outs) == 1 and 1 <= outs[0].n_generated <= 8 and isinstance(outs[0].text, str)
    assert m.hf_model is not None and getattr(m, "pvm", None) is not None


def test_ci_runs_the_readme_test_command_and_it_installs_what_command_1_installs():
    """.ci/run runs README command 2 verbatim; command 1 installs the same (only pip/uv's -q and the
    last step differ), so the two commands cannot drift apart."""
    text = README.read_text(encoding="utf-8")
    install = re.search(r"# 1\. .*?\n(python3 -m venv .*)\n", text).group(1)
    test = re.search(r"# 2\. .*?\n(python3 -m venv .*)\n", text).group(1)
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci.splitlines()
    assert test.endswith(" && .venv/bin/python -m pytest -q") and install.endswith(" && .venv/bin/pvm-bench run")

    def steps(command: str) -> list[str]:
        return [step.replace(" -q ", " ") for step in command.split(" && ")[:-1]]

    assert steps(install) == steps(test) and len(steps(test)) == 3, (steps(install), steps(test))
