"""The fault matrix as docs/reliability.md shows it: one Markdown table, a cell's wording from its `Outcome` and
its row's `Line`."""

from __future__ import annotations

from collections.abc import Sequence

from .cells import Failure, Line, Outcome, Stored


def cell_text(outcome: Outcome, line: Line) -> str:
    status = str(outcome.status)
    if outcome.code:
        status += f" {outcome.code}" if isinstance(outcome.status, int) else f" ({outcome.code})"
    parts = [status]
    if outcome.stored is Stored.NOTHING and line.nothing_text:
        parts.append(line.nothing_text + (" (done in Codat)" if outcome.done_in_codat else ""))
    elif outcome.stored is Stored.ONCE and line.done_text:
        parts.append(line.done_text)
    if outcome.untouched:
        parts.append(outcome.untouched)
    if outcome.note:
        parts.append(outcome.note)
    if outcome.stored is Stored.NOTHING:
        parts.append(line.retry_text)
    return " · ".join(parts)


def markdown_table(lines: Sequence[Line]) -> str:
    """The "Fault matrix" table of docs/reliability.md (a test keeps the page in step)."""
    table = [
        "| | " + " | ".join(f.value for f in Failure) + " |",
        "| --- |" + " --- |" * len(Failure),
    ]
    for line in lines:
        cells = [cell_text(line.cells[f], line) for f in Failure]
        table.append(f"| {line.label} | " + " | ".join(cells) + " |")
    return "\n".join(table)
