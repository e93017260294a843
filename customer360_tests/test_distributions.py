"""The runtime package ships only what runs the pipeline; the demo data generator is a distribution of its own.

Why: the generator (~1,600 lines, 13% of the package) used to ship inside ``customer360``, so the production image
carried it. It is now ``customer360_generator`` under tools/ (its own pyproject.toml), which ``dev.py`` installs into
.venv beside the runtime for the demo, the tests and the benchmarks. The wheels are built here for real (pip,
setuptools), the runtime one from exactly what the image's build stage copies (deploy/image/Dockerfile).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "image" / "Dockerfile"


def _build_wheel(source: Path, out: Path) -> set[str]:
    """The files of the wheel pip builds from ``source`` (the installed setuptools; no network)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def _build_stage_sources() -> list[str]:
    """What the image's build stage copies from the repository (up to its second FROM: the runtime stage)."""
    build_stage = DOCKERFILE.read_text().split("\nFROM ", 2)[1]
    copies = re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", build_stage, re.MULTILINE)
    return [source for copied in copies for source in copied.split()]


def test_the_runtime_wheel_the_image_builds_has_no_generator(tmp_path: Path) -> None:
    sources = _build_stage_sources()
    assert "tools" not in sources and sorted(sources) == ["customer360", "pyproject.toml"], sources
    source = tmp_path / "src"
    source.mkdir()
    for name in sources:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    files = _build_wheel(source, tmp_path / "wheel")
    packages = {name.split("/")[0] for name in files if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"customer360"}, packages
    assert "customer360/cli.py" in files and "customer360/defs/definitions.py" in files
    assert not [name for name in files if "generator" in name]


def test_the_tools_wheel_is_the_generator_alone(tmp_path: Path) -> None:
    source = tmp_path / "tools"
    shutil.copytree(ROOT / "tools", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    files = _build_wheel(source, tmp_path / "wheel")
    modules = sorted(name for name in files if name.endswith(".py"))
    assert modules and all(name.startswith("customer360_generator/") for name in modules), modules
    assert "customer360_generator/activity.py" in modules and "customer360_generator/demo_data.py" in modules
    # The generator writes files by the raw landing contract; it never imports the runtime package.
    sources = "\n".join((ROOT / "tools" / name).read_text() for name in modules)
    assert not re.search(r"^\s*(from|import) customer360\b(?!_)", sources, re.MULTILINE)
