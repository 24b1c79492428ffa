"""``pip install ./clients`` installs the package on its own: importable as ``clients``, without its tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import pytest

CLIENTS_DIR = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package pip-installed into a fresh target directory, built offline from a copy of the source tree."""
    root = tmp_path_factory.mktemp("clients-install")
    source, target = root / "src", root / "site"
    # A copy: an in-tree build leaves build/ and *.egg-info behind, which must not land in the repository
    shutil.copytree(CLIENTS_DIR, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
            "--target", str(target), str(source),
        ],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return target


def run_python(code: str, *, path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter whose only extra import path is ``path`` (not the repository)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DJANGO_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_installed_package_imports_from_outside_the_repository(installed, tmp_path):
    # Given the package installed into a directory, and an interpreter started elsewhere with only that directory
    code = (
        "import json, clients, clients.tokens, clients.wsgi, clients.remote, clients.service_token;"
        "print(json.dumps({'file': clients.__file__, 'verifier': clients.tokens.TokenVerifier.__name__}))"
    )

    # When it imports the core
    result = run_python(code, path=installed, cwd=tmp_path)

    # Then the modules come from the installed copy
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["file"]).parent == installed / "clients"
    assert report["verifier"] == "TokenVerifier"


def test_the_tests_are_not_installed(installed, tmp_path):
    assert not (installed / "clients" / "tests").exists()
    assert not (installed / "tests").exists()
    result = run_python("import clients.tests", path=installed, cwd=tmp_path)
    assert result.returncode != 0
    assert "No module named 'clients.tests'" in result.stderr


def test_the_distribution_declares_its_dependencies_and_extras(installed):
    (dist_info,) = installed.glob("ums_clients-*.dist-info")
    metadata = Parser().parsestr((dist_info / "METADATA").read_text())

    assert metadata["Name"] == "ums-clients"
    requires = metadata.get_all("Requires-Dist")
    assert {"PyJWT[crypto]>=2.8", "cryptography>=42", "requests>=2.31"} <= set(requires)
    assert set(metadata.get_all("Provides-Extra")) == {"redis", "django", "drf", "flask"}
    assert 'Flask>=3.0; extra == "flask"' in requires
    assert (installed / "clients" / "py.typed").exists()  # type checkers read the package's annotations
    assert (dist_info / "top_level.txt").read_text().split() == ["clients"]
