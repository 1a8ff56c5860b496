"""The layout's rules, read from the import statements: what may import what."""

from __future__ import annotations

from pathlib import Path

from src.storage.stage1_cache import src_imports

SRC = Path(__file__).resolve().parents[1] / "src"


def within(name: str, homes: tuple[str, ...]) -> bool:
    return any(name == home or name.startswith(home + ".") for home in homes)


def test_data_imports_no_method_module():
    # the data and its noise come before the method: they may use only what is no part of it
    allowed = ("src.data", "src.errors", "src.runtime", "src.stats", "src.storage")
    found = {f"{path.relative_to(SRC.parent)}: {name}" for path in sorted((SRC / "data").rglob("*.py"))
             for name in src_imports(path) if not within(name, allowed)}
    assert not found, found


def test_the_checks_see_imports():  # the rules here are not vacuous
    assert "src.stats.trusted_noise_rate" in src_imports(SRC / "data" / "base.py")
    assert "src.accel.build" in src_imports(SRC / "pipeline.py")


def test_only_the_pipeline_imports_the_speed_layer():
    # src/accel plugs into the method through one seam, `src.accel.build`, which the pipeline calls
    seam = {SRC / "pipeline.py"}
    found = {f"{path.relative_to(SRC.parent)}: {name}" for path in sorted(SRC.rglob("*.py"))
             if path not in seam and (SRC / "accel") not in path.parents
             for name in src_imports(path) if within(name, ("src.accel",))}
    assert not found, found
