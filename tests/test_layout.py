"""The import graph is the architecture: import-linter's contracts hold, and break on a
violation; a worker process loads nothing of the coordinator."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, str(ROOT / "scripts" / "lint_imports.py")]


def _lint(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT, *extra], capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=120)


def test_the_layout_contracts_hold():
    done = _lint()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout
    # and on the repository itself, as `make lint` runs it
    plain = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
                           capture_output=True, text=True, encoding="utf-8",
                           errors="replace", timeout=120, cwd=ROOT)
    assert plain.returncode == 0, plain.stdout[-2000:] + plain.stderr[-2000:]
    assert "2 kept, 0 broken" in plain.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("metainf/coordinator/store.py", "from metainf.worker import agent",
     "the coordinator never imports the worker"),
    ("metainf/worker/agent.py", "import metainf.selector.table", "layers"),
    ("metainf/selector/table.py", "import metainf.coordinator.store", "layers"),
    ("metainf/p.py", "import metainf.selector.table", "layers"),
    ("metainf/placement/fleet.py", "import metainf.selector.table", "layers"),
    ("metainf/worker/agent.py", "import metainf.placement.fleet", "layers"),
    ("metainf/placement/plan.py", "import metainf.coordinator.store", "layers"),
])
def test_a_violation_breaks_a_contract(module, line, contract):
    done = _lint("--inject", f"{module}:{line}")
    assert done.returncode != 0
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout[-2000:]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("folder, forbidden", [
    ("coordinator", ("metainf.worker",)),
    ("selector", ("metainf.worker", "metainf.coordinator", "metainf.placement")),
    ("worker", ("metainf.coordinator", "metainf.selector", "metainf.placement")),
    ("placement", ("metainf.worker", "metainf.coordinator", "metainf.selector", "metainf.cli")),
])
def test_no_module_of_a_package_imports_a_forbidden_one(folder, forbidden):
    bad = [(str(p.relative_to(ROOT)), name) for p in (ROOT / folder).rglob("*.py")
           for name in _imports(p) if name.startswith(forbidden)]
    assert bad == []


def test_a_worker_process_loads_nothing_of_the_coordinator():
    code = ("import json, sys\n"
            "import metainf.cli, metainf.worker.agent\n"
            "metainf.cli.build_parser()\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('metainf.'))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert "metainf.worker.agent" in loaded
    assert [m for m in loaded if m.startswith(("metainf.coordinator", "metainf.selector",
                                               "metainf.placement"))] == []
