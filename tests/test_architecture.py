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


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    return contract["layers"]


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.is_file():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev extra (pip install -e '.[dev]')")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)}
    )


def test_the_layering_contract_is_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


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
    in_contract = sorted(m.strip() for layer in _contract_layers() for m in layer.split("|"))
    assert in_contract == _modules(), "add the new module to [tool.importlinter] and docs/architecture.md"
    page = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"<!-- layers:start -->\n```\n(.*?)```\n<!-- layers:end -->", page, re.S).group(1)
    drawn = [re.split(r"\s{2,}", line.strip())[0] for line in block.strip().splitlines()]
    assert drawn == _contract_layers(), "docs/architecture.md draws other layers than pyproject.toml declares"
    for module in _modules():
        assert f"`{module}.py`" in page, f"docs/architecture.md does not say where {module}.py fits"


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            yield node, id(node) in top_level


@pytest.mark.parametrize("module", _modules())
def test_no_private_names_across_modules_and_no_hidden_imports(module):
    for node, at_top in _imports(PACKAGE / f"{module}.py"):
        private = [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
        assert not private, f"{module}.py line {node.lineno} imports private {private} from .{node.module}"
        if module not in LAZY_IMPORTS_ALLOWED:
            assert at_top, f"{module}.py line {node.lineno}: import .{node.module} at the top of the module"
