"""The README as a user meets it: every Python snippet runs as written (in a child process,
from an empty folder; a snippet that calls ``.cuda()`` runs in numba's CUDA simulator), the
quickstart is ``fastnn/quickstart.py`` and prints what ``fastnn demo`` prints, the set-up
commands are the ones CI runs, and the page stays a user's page (short, no commit hashes)."""
import ast
import os
import re
import subprocess
import sys

import pytest

from cudasim import without_simulator_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as _f:
    README = _f.read()
TIMEOUT = 600  # the simulator runs each GPU thread as a Python thread


def blocks(language):
    return re.findall(rf"^```{language}\n(.*?)^```$", README, re.M | re.S)


PYTHON = blocks("python")


def run_snippet(code, tmp_path, simulator=False):
    env = without_simulator_env()
    # the snippet's own launch configuration: the default, as a user gets it
    env = {k: v for k, v in env.items() if not k.startswith("FASTNN_CUDA_")}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def _code_without_docstrings(source):
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body \
                and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant) \
                and isinstance(node.body[0].value.value, str):
            node.body = node.body[1:]
    return ast.dump(tree)


def test_the_readme_has_python_snippets_and_one_runs_on_the_gpu():
    assert any("def quickstart" in code for code in PYTHON)
    assert any(".cuda()" in code for code in PYTHON)


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_snippet_runs_as_written(index, tmp_path):
    code = PYTHON[index]
    gpu = ".cuda()" in code
    if "to_torch" in code or "from_torch" in code:
        pytest.importorskip("torch")  # never a dependency (.ci/run installs it)
    if "onnx.export" in code:
        pytest.importorskip("onnx")
    r = run_snippet(code, tmp_path, simulator=gpu)
    assert r.returncode == 0, f"README snippet {index} failed:\n{code}\n{r.stdout}\n{r.stderr}"
    if gpu:
        assert re.search(r"^accuracy: \d\.\d{4}$", r.stdout, re.M), r.stdout
    if "def quickstart" in code:
        demo = subprocess.run([sys.executable, "-m", "fastnn", "demo"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=TIMEOUT,
                              env=without_simulator_env())
        assert demo.returncode == 0, demo.stderr
        assert r.stdout == demo.stdout  # the same net, the same figures
        last = r.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"accuracy: \d\.\d{4}", last)
        assert f"and last `{last}`" in README  # the figure the README quotes


def test_the_quickstart_is_the_demo_module():
    code = next(c for c in PYTHON if "def quickstart" in c)
    with open(os.path.join(ROOT, "fastnn", "quickstart.py"), encoding="utf-8") as f:
        module = f.read()
    assert code.rstrip().endswith("\nquickstart()")
    snippet = code.rstrip()[:-len("quickstart()")]
    assert _code_without_docstrings(snippet) == _code_without_docstrings(module)
    assert "manual_seed" in code and "accuracy" in code


def test_the_set_up_commands_are_the_ones_ci_runs():
    bash = "\n".join(blocks("bash"))
    assert "pip install -e . && FASTNN_DATA=../shared/data fastnn train mnist" in bash
    test_command = "pip install -e '.[test]' && FASTNN_DATA=../shared/data python -m pytest -q"
    assert test_command in bash
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert "pip install -e '.[test]' && python -m pytest -q" in f.read()


def test_the_bench_extra_comes_before_the_asv_commands():
    first_asv = README.index("asv run")
    assert "[bench]" in README[:first_asv]


def test_the_readme_is_a_users_page():
    assert len(README.splitlines()) <= 300
    hashes = re.findall(r"`[0-9a-f]{7,40}`", README)
    assert not hashes, f"commit hashes belong in docs/performance.md: {hashes}"
    assert "docs/performance.md" in README
    assert os.path.isfile(os.path.join(ROOT, "docs", "performance.md"))
