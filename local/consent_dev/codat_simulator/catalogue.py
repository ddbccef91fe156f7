"""The integrations the simulator offers by default: Codat's sandboxes plus a realistic catalogue.

The sandbox keys (mqjo, qhnd, aiwb) and those in Codat's spec examples (gbol, akxx, vjms, dfxm) are Codat's;
the other keys are plausible stand-ins, not guaranteed to match Codat's production catalogue.
"""

from __future__ import annotations

import uuid

from .state import Integration, SourceType

# Stable ids across runs, so recorded fixtures and logs stay comparable.
_NAMESPACE = uuid.UUID("6f1c7a36-2a43-4b0e-9a57-3c3f5b7d9e10")

# (key, name, sourceType, enabled, isOfflineConnector, isBeta)
_CATALOGUE: tuple[tuple[str, str, SourceType, bool, bool, bool], ...] = (
    ("mqjo", "Codat Sandbox", "Accounting", True, False, False),
    ("qhnd", "Codat Banking Sandbox", "Banking", True, False, False),
    ("aiwb", "Codat Commerce Sandbox", "Commerce", True, False, False),
    ("gbol", "Xero", "Accounting", True, False, False),
    ("qhyg", "QuickBooks Online", "Accounting", True, False, False),
    ("akxx", "Oracle NetSuite", "Accounting", True, False, False),
    ("tgff", "Sage Business Cloud Accounting", "Accounting", True, False, False),
    ("trji", "Dynamics 365 Business Central", "Accounting", True, False, False),
    ("fbrh", "FreeAgent", "Accounting", True, False, False),
    ("vjms", "Pandle", "Accounting", False, False, False),
    ("pqsw", "QuickBooks Desktop", "Accounting", False, True, False),
    ("dfxm", "Basiq", "Banking", True, False, False),
    ("ugxp", "Plaid", "Banking", True, False, False),
    ("tlyr", "TrueLayer", "Banking", True, False, True),
    ("pcsl", "Shopify", "Commerce", True, False, False),
    ("gxvn", "Square", "Commerce", True, False, False),
    ("meiv", "Stripe", "Commerce", False, False, False),
)


def default_integrations() -> dict[str, Integration]:
    """A fresh catalogue keyed by platform key (callers may mutate it)."""
    return {
        key: Integration(
            key=key,
            name=name,
            source_type=source_type,
            enabled=enabled,
            integration_id=str(uuid.uuid5(_NAMESPACE, f"integration:{key}")),
            source_id=str(uuid.uuid5(_NAMESPACE, f"source:{key}")),
            is_offline_connector=offline,
            is_beta=beta,
        )
        for key, name, source_type, enabled, offline, beta in _CATALOGUE
    }
