"""The fuzz run's figures: how many requests each operation was sent, by phase, printed after the tests."""

from __future__ import annotations

from collections import Counter

import pytest

_SENT: Counter[tuple[str, str]] = Counter()


@pytest.fixture(scope="session")
def fuzz_tally() -> Counter[tuple[str, str]]:
    """(operation, phase) → requests generated for it."""
    return _SENT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _SENT:
        return
    phases = sorted({phase for _, phase in _SENT})
    operations = sorted({operation for operation, _ in _SENT})
    width = max(len(operation) for operation in operations)

    def line(name: str, counts: list[int]) -> None:
        terminalreporter.write_line(f"{name:<{width}}  " + "  ".join(f"{c:>9}" for c in [*counts, sum(counts)]))

    terminalreporter.section("Schemathesis: requests generated per operation and phase")
    terminalreporter.write_line(f"{'operation':<{width}}  " + "  ".join(f"{p:>9}" for p in [*phases, "total"]))
    for operation in operations:
        line(operation, [_SENT[(operation, phase)] for phase in phases])
    line("all", [sum(_SENT[(operation, phase)] for operation in operations) for phase in phases])
