"""The fault matrix as data: every route of template.yaml, the webhook handler, the outbox relay, reconciliation
and the consent lifecycle (the rows), each against every way what it depends on can fail (the columns, `Failure`),
and the expected outcome of each cell. One module per area; `cells` is their vocabulary and `document` the table of
docs/reliability.md made from them. tests/integration/test_fault_matrix.py runs each cell."""

from __future__ import annotations

from collections.abc import Mapping

from . import api_routes, lifecycle, reconcile, relay, webhooks
from .cells import Failure, Line, Outcome

LINES: tuple[Line, ...] = (*api_routes.LINES, webhooks.LINE, relay.LINE, reconcile.LINE, *lifecycle.LINES)
MATRIX: dict[str, Mapping[Failure, Outcome]] = {line.name: line.cells for line in LINES}

assert len(MATRIX) == len(LINES), "one line for each route or function"
assert len({line.slug for line in LINES}) == len(LINES), "one slug for each line (test ids)"
assert all(set(line.cells) == set(Failure) for line in LINES), "every cell of the matrix is filled"
