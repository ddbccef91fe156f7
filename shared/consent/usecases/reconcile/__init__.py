"""Reconciliation: every stored connection compared with Codat's, healing the drift that missed webhooks leave.

run       a run: the webhook consumer checked, then the pass over the companies within budget and time
company   one company: Codat's view read, tags brought up to date, unauthorized links expired, drift healed
heal      what Codat reports, recorded as status events observed at the time of the check
reads     a missed `read.completed`, from Codat's data status, on the one connection that can have made it
report    what a run reports and why it stops"""

from consent.usecases.reconcile.company import reconcile_company
from consent.usecases.reconcile.report import CompanyCheck, ReconcileReport, Stop
from consent.usecases.reconcile.run import reconcile

__all__ = ["CompanyCheck", "ReconcileReport", "Stop", "reconcile", "reconcile_company"]
