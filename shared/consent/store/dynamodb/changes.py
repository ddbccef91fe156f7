"""Changes to a company's partition, committed in one transaction, and the webhooks behind them: the ids of
processed webhooks (a redelivery changes nothing) and the webhooks parked because they cannot be applied."""

from __future__ import annotations

from typing import TYPE_CHECKING

from consent.store.change import Change
from consent.store.dynamodb.table import DynamoDBTable, Item, _n, _s, company_pk, ledger_sk, webhook_pk
from consent.store.port import ParkedWebhook

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


class Changes(DynamoDBTable):
    """`Change`s as TransactWriteItems, `WEBHOOK#<webhook-id>` items (TTL) and parked webhooks."""

    def commit(self, change: Change) -> None:
        items: list[TransactWriteItemTypeDef] = []
        if change.company is not None:
            saved = change.company.model_copy(update={"version": change.company.version + 1})
            items.append(self._update_company_if_version(saved, change.company.version))
        for connection in change.added:
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._connection_item(connection.model_copy(update={"version": 1})),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
            )
        for connection in change.updated:
            saved_connection = connection.model_copy(update={"version": connection.version + 1})
            items.append(self._put_if_version(self._connection_item(saved_connection), connection.version))
        items.extend(self._put_ledger(entry) for entry in change.ledger)
        company_id = change.company.company_id if change.company is not None else None
        for retracted in change.retracted:
            assert company_id is not None, "a retraction comes with the company it belongs to"
            key = {"PK": _s(company_pk(company_id)), "SK": _s(ledger_sk(retracted))}
            items.append({"Delete": {"TableName": self._table, "Key": key}})
        items.extend(self._put_ledger(entry, replacing=True) for entry in change.replaced)
        if change.webhook_id is not None:
            items.append(self._remember_webhook(change.webhook_id))
        if items:
            self._transact(items)

    def _remember_webhook(self, webhook_id: str) -> TransactWriteItemTypeDef:
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "PK": _s(webhook_pk(webhook_id)),
                    "SK": _s("WEBHOOK"),
                    "kind": _s("webhook"),
                    "expiresAt": _n(int(self._clock()) + self._webhook_ttl),
                },
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

    def webhook_seen(self, webhook_id: str) -> bool:
        item = self._call(
            self._db.get_item,
            TableName=self._table,
            Key={"PK": _s(webhook_pk(webhook_id)), "SK": _s("WEBHOOK")},
            ConsistentRead=True,
            ProjectionExpression="PK",
        ).get("Item")
        return item is not None

    def park_webhook(self, parked: ParkedWebhook) -> None:
        item: Item = {
            "kind": _s("parked"),
            "webhookId": _s(parked.webhook_id),
            "eventType": _s(parked.event_type[:200]),
            "generatedDate": _s(parked.generated_at[:64]),
            "reason": _s(parked.reason[:500]),
        }
        if parked.company_id:
            # Under the company, so that erasing the company erases this too.
            item |= {"PK": _s(company_pk(parked.company_id)), "SK": _s(f"PARKED#{parked.webhook_id}")}
        else:
            item |= {
                "PK": _s(f"PARKED#{parked.webhook_id}"),
                "SK": _s("PARKED"),
                "expiresAt": _n(int(self._clock()) + self._webhook_ttl),
            }
        if parked.connection_id:
            item["connectionId"] = _s(parked.connection_id)
        self._transact(
            [
                {"Put": {"TableName": self._table, "Item": item}},
                self._remember_webhook(parked.webhook_id),
            ]
        )
