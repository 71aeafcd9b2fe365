"""The package's declared layering (pyproject.toml, docs/architecture.md) holds."""

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "covid_tutorial"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# Only the command line imports lazily: `covid-tutorial --help` must not wait for TensorFlow.
LAZY_IMPORTS_ALLOWED = {"cli"}


CHAPTERS = ("data", "explain", "teaching")


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _contract_layers() -> list[str]:
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    return layers["layers"]


def _layer_parts(layer: str) -> list[str]:
    return [part.strip() for part in re.split(r"[|:]", layer)]


def _modules() -> list[str]:
    """The names a layer holds: the flat modules and the chapter folders."""
    flat = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    folders = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    return sorted(flat + folders)


def _source_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.is_file():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extra (pip install -e '.[dev]')")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)}
    )


def test_the_layering_contract_is_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(_contracts())} kept, 0 broken" in result.stdout


def test_the_chapters_are_folders():
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()) == sorted(CHAPTERS)


def test_the_contract_catches_an_import_that_reaches_up(tmp_path):
    copy = tmp_path / "covid_tutorial"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    metrics = copy / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nfrom . import pipeline  # reaches up two layers\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "covid_tutorial.metrics is not allowed to import covid_tutorial.pipeline" in result.stdout


def test_every_module_is_in_the_contract_and_in_the_architecture_page():
    in_contract = sorted(part for layer in _contract_layers() for part in _layer_parts(layer))
    assert in_contract == _modules(), "add the new module to [tool.importlinter] and docs/architecture.md"
    page = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"<!-- layers:start -->\n```\n(.*?)```\n<!-- layers:end -->", page, re.S).group(1)
    drawn = [re.split(r"\s{2,}", line.strip())[0] for line in block.strip().splitlines()]
    assert drawn == _contract_layers(), "docs/architecture.md draws other layers than pyproject.toml declares"
    for path in _source_files():
        name = path.relative_to(PACKAGE).as_posix()
        assert f"`{name}`" in page, f"docs/architecture.md does not say where {name} fits"


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            yield node, id(node) in top_level


@pytest.mark.parametrize("module", [p.relative_to(PACKAGE).as_posix() for p in _source_files()])
def test_no_private_names_across_modules_and_no_hidden_imports(module):
    for node, at_top in _imports(PACKAGE / module):
        private = [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
        assert not private, f"{module} line {node.lineno} imports private {private} from .{node.module}"
        if Path(module).stem not in LAZY_IMPORTS_ALLOWED:
            assert at_top, f"{module} line {node.lineno}: import .{node.module} at the top of the module"


@pytest.mark.parametrize(
    ("module", "added", "broken"),
    [
        ("data/table.py", "import keras", "covid_tutorial.data is not allowed to import keras"),
        ("metrics.py", "import tensorflow", "covid_tutorial.metrics is not allowed to import tensorflow"),
        ("runs.py", "from . import figures", "covid_tutorial.runs is not allowed to import covid_tutorial.figures"),
        ("system.py", "from . import colab", "is not allowed to import covid_tutorial.colab"),
    ],
)
def test_the_forbidden_contracts_catch_what_they_forbid(tmp_path, module, added, broken):
    copy = tmp_path / "covid_tutorial"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (copy / module).write_text((copy / module).read_text() + f"\n{added}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_data_chapter_and_metrics_start_without_tensorflow():
    code = (
        "import sys, covid_tutorial.data, covid_tutorial.metrics\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = _fresh_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_covid_tutorial_inspect_runs_without_tensorflow(phantom_dir):
    code = (
        "import sys\n"
        "from covid_tutorial.cli import main\n"
        f"code = main(['inspect', {str(phantom_dir)!r}])\n"
        "print('loaded:', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
        "sys.exit(code)"
    )
    result = _fresh_python(code)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Images: 70" in result.stdout  # the 30-patient phantom set was read
    assert result.stdout.strip().endswith("loaded: []")
