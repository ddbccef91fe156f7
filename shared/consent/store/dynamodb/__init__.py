"""The consent store on one DynamoDB table (single-table design).

Items (PK / SK):
  COMPANY#<companyId> / COMPANY                      the company, its journey progress, owner and version
  COMPANY#<companyId> / CONNECTION#<connectionId>    one connection
  COMPANY#<companyId> / LEDGER#<at>#<seq>#<entryId>  one consent ledger entry (oldest first by SK)
  IDEMPOTENCY#<hash of caller and key> / IDEMPOTENCY  one API idempotency key, expiring through TTL
  WEBHOOK#<webhook-id> / WEBHOOK                     a processed Codat webhook, kept 8 days (TTL)
  COMPANY#<companyId> / PARKED#<webhook-id>          an authentic webhook that cannot be applied, and why
  PARKED#<webhook-id> / PARKED                       the same, for a company we do not know (TTL)
  RECONCILE#cursor / RECONCILE                       where reconciliation's pass over the companies stopped
  QUOTA#<hash of customerId> / COMPANIES             the customer's company count (for the per-customer cap)
  QUOTA#<hash of customerId> / RATE#<day>            the customer's Codat-calling requests that UTC day and minute
  LIFECYCLE#keep-alive / DAY#<day>                   the keep-alive requests to Codat that UTC day (TTL)
GSI1 (GSI1PK = CUSTOMER#<customerId>, GSI1SK = <companyCreatedAt>#<companyId>#COMPANY|CONNECTION#<id>)
lists a customer's companies with their connections, newest first, in one Query per page.
GSI2 (GSI2PK = LIFECYCLE#<shard>, GSI2SK = <next reminder or refresh due>#<companyId>#<connectionId>, keys only)
holds the connections the lifecycle has something to do for (sparse): its run Queries what is due, never the table.
Company and connection reads by id are one strongly consistent Query on the company's partition.
Only reconciliation reads the whole table: a paged Scan keeping the company items, resumed from the cursor item.

The store, one module per concern, each a class on `table.DynamoDBTable`:
  table        item keys and attributes, the items several concerns write, boto3 calls and their failures
  idempotency  API idempotency keys
  companies    creating, reading and listing companies; a company's connections and ledger
  quotas       the per-customer counters: companies, Codat-calling requests per day and minute
  changes      committing a `Change`; processed webhook ids; parked webhooks
  erasure      erasing a company, and finishing an interrupted erasure
  sweep        reconciliation's pass over the companies and its cursor
  lifecycle    the connections due a reminder or a keep-alive refresh (GSI2); the day's keep-alive requests
"""

from __future__ import annotations

from consent.store.dynamodb.changes import Changes
from consent.store.dynamodb.companies import Companies
from consent.store.dynamodb.erasure import Erasure
from consent.store.dynamodb.idempotency import IdempotencyKeys
from consent.store.dynamodb.lifecycle import Lifecycle
from consent.store.dynamodb.quotas import CustomerQuotas
from consent.store.dynamodb.sweep import ReconciliationSweep
from consent.store.dynamodb.table import GSI1, GSI2, Item, company_pk, customer_pk, ledger_sk, quota_pk, webhook_pk
from consent.store.port import ConsentStore

__all__ = [
    "GSI1",
    "GSI2",
    "DynamoDBConsentStore",
    "Item",
    "company_pk",
    "customer_pk",
    "ledger_sk",
    "quota_pk",
    "webhook_pk",
]


# Companies and Erasure build on the idempotency keys and the quotas, so come before them; the port comes last, so
# that the concerns' methods implement its abstract ones.
class DynamoDBConsentStore(
    Companies, Erasure, IdempotencyKeys, CustomerQuotas, Changes, ReconciliationSweep, Lifecycle, ConsentStore
):
    """The consent store on one DynamoDB table: its concerns, composed."""

    max_items_per_commit = 100  # TransactWriteItems
