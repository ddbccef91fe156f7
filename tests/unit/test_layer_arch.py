"""`make build` fails when the layer's native code is for another architecture than the functions'."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consent_dev.template import REPO_ROOT

pytestmark = pytest.mark.unit

CHECK = REPO_ROOT / "scripts" / "check-layer-arch"


def _elf(path: Path, machine: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + (3).to_bytes(2, "little") + machine.to_bytes(2, "little")
    path.write_bytes(header + bytes(64))


def run(layer: Path, architecture: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(CHECK), str(layer), architecture]
    return subprocess.run(command, check=False, capture_output=True, text=True)


def test_a_layer_for_the_functions_architecture_passes(tmp_path: Path) -> None:
    _elf(tmp_path / "python/pydantic_core/_pydantic_core.cpython-313-aarch64-linux-gnu.so", 0xB7)
    assert run(tmp_path, "arm64").returncode == 0


def test_a_layer_for_another_architecture_fails_the_build(tmp_path: Path) -> None:
    _elf(tmp_path / "python/pydantic_core/_pydantic_core.cpython-313-x86_64-linux-gnu.so", 0x3E)
    result = run(tmp_path, "arm64")
    assert result.returncode == 1
    assert "is x86_64, the functions are arm64" in result.stderr


def test_a_layer_without_native_code_is_not_taken_for_a_good_one(tmp_path: Path) -> None:
    (tmp_path / "python").mkdir()
    assert run(tmp_path, "arm64").returncode == 1
