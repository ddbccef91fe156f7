"""API idempotency keys: claimed, released, completed with the answer they replay, and spent by an erasure."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from typing import TYPE_CHECKING

from consent.store.dynamodb.table import DynamoDBTable, Item, _n, _s
from consent.store.port import ConflictError, IdempotencyClaim, IdempotencyOutcome, IdempotencyResult

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

_IDEMPOTENCY_LEASE_SECONDS = 60  # longer than any API function's timeout (29 s)
# An erased company's Idempotency-Key stays spent this long: Codat remembers a key for 90 minutes.
_SPENT_KEY_SECONDS = 2 * 3600


class IdempotencyKeys(DynamoDBTable):
    """One item per API idempotency key (`IDEMPOTENCY#<hash of caller and key>`), expiring through TTL."""

    def claim_idempotency_key(self, scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
        now = int(self._clock())
        token = secrets.token_hex(16)
        try:
            response = self._call(
                self._db.update_item,
                TableName=self._table,
                Key=self._idempotency_key(scope, key),
                UpdateExpression=(
                    "SET kind = :kind, #state = :in_progress, fingerprint = :fp, claimToken = :token,"
                    " leaseUntil = :lease, expiresAt = :expires, reachedCodat = if_not_exists(reachedCodat, :false)"
                ),
                # Free, expired (TTL deletes lazily), released by a failed attempt, or abandoned by a
                # crashed one (lease over); the last two only for the same request body.
                ConditionExpression=(
                    "attribute_not_exists(PK) OR expiresAt < :now OR (fingerprint = :fp AND"
                    " (#state = :released OR (#state = :in_progress AND leaseUntil < :now)))"
                ),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":kind": _s("idempotency"),
                    ":in_progress": _s("IN_PROGRESS"),
                    ":released": _s("RELEASED"),
                    ":fp": _s(fingerprint),
                    ":token": _s(token),
                    ":lease": _n(now + _IDEMPOTENCY_LEASE_SECONDS),
                    ":expires": _n(now + self._idempotency_ttl),
                    ":now": _n(now),
                    ":false": {"BOOL": False},
                },
                ReturnValues="ALL_NEW",
            )
        except ConflictError:
            return self.idempotency_key_state(scope, key, fingerprint)
        reached = bool(response["Attributes"].get("reachedCodat", {}).get("BOOL"))
        return IdempotencyClaim(IdempotencyOutcome.ACQUIRED, token=token, previous_attempt_reached_codat=reached)

    def idempotency_key_state(self, scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
        item = self._call(
            self._db.get_item, TableName=self._table, Key=self._idempotency_key(scope, key), ConsistentRead=True
        ).get("Item")
        if item is None:  # it expired or was deleted between the two calls: the caller may simply retry
            return IdempotencyClaim(IdempotencyOutcome.IN_PROGRESS)
        if item["state"]["S"] == "ERASED":
            return IdempotencyClaim(IdempotencyOutcome.ERASED)
        if item["fingerprint"]["S"] != fingerprint:
            return IdempotencyClaim(IdempotencyOutcome.MISMATCH)
        if item["state"]["S"] == "COMPLETED":
            return IdempotencyClaim(
                IdempotencyOutcome.REPLAY, status=int(item["responseStatus"]["N"]), body=item["responseBody"]["S"]
            )
        return IdempotencyClaim(IdempotencyOutcome.IN_PROGRESS)

    def release_idempotency_key(self, scope: str, key: str, token: str, *, reached_codat: bool) -> None:
        update = "SET #state = :released" + (", reachedCodat = :true" if reached_codat else "")
        values: dict[str, AttributeValueTypeDef] = {":released": _s("RELEASED"), ":token": _s(token)}
        if reached_codat:
            values[":true"] = {"BOOL": True}
        # A conflict means someone took the key over after our lease ran out: it is theirs now.
        with contextlib.suppress(ConflictError):
            self._call(
                self._db.update_item,
                TableName=self._table,
                Key=self._idempotency_key(scope, key),
                UpdateExpression=update,
                ConditionExpression="claimToken = :token",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )

    def _idempotency_key(self, scope: str, key: str) -> Item:
        digest = hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()
        return {"PK": _s(f"IDEMPOTENCY#{digest}"), "SK": _s("IDEMPOTENCY")}

    def _spend_idempotency_key(self, idempotency_pk: str) -> TransactWriteItemTypeDef:
        """The key of an erased company's create request, emptied of everything but the key's hash: the remembered
        answer (the company's name) and the body's fingerprint go, and the key stays spent while Codat still
        remembers it (its idempotency window, 90 minutes from its first use, which was before now). Reused with any
        body, it answers 422: Codat would refuse another body, and replay the erased company for the same one."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"PK": _s(idempotency_pk), "SK": _s("IDEMPOTENCY")},
                "UpdateExpression": (
                    "SET kind = :kind, #state = :erased, expiresAt = :expires"
                    " REMOVE fingerprint, responseStatus, responseBody, claimToken, leaseUntil, reachedCodat"
                ),
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":kind": _s("idempotency"),
                    ":erased": _s("ERASED"),
                    ":expires": _n(int(self._clock()) + _SPENT_KEY_SECONDS),
                },
            }
        }

    def _complete_idempotency(self, result: IdempotencyResult) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self._table,
                "Key": self._idempotency_key(result.scope, result.key),
                "UpdateExpression": "SET #state = :completed, responseStatus = :status, responseBody = :body",
                "ConditionExpression": "claimToken = :token AND #state = :in_progress",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":completed": _s("COMPLETED"),
                    ":in_progress": _s("IN_PROGRESS"),
                    ":status": _n(result.status),
                    ":body": _s(result.body),
                    ":token": _s(result.token),
                },
            }
        }
