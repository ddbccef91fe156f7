"""The floor of each route: a hand-written minimal handler that makes the same AWS and Codat calls as the
product, directly with boto3 and httpx — no Powertools resolver, no pydantic, no ports — reading and writing
the same items. What the product costs above this is the price of its structure and its guarantees."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef, WriteRequestTypeDef

Event = dict[str, Any]
Result = dict[str, Any]
Item = dict[str, Any]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _answer(status: int, body: Any = None) -> Result:
    result: Result = {"statusCode": status, "headers": {"Content-Type": "application/json"}}
    if body is not None:
        result["body"] = json.dumps(body)
    return result


class FloorHandlers:
    """One minimal handler per route (dispatched on the API Gateway event's routeKey)."""

    def __init__(
        self, table: str, codat_url: str, codat_api_key: str, webhook_secret: str, customer_ref_key: str
    ) -> None:
        config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
        self.db = boto3.client("dynamodb", config=config)
        self.table = table
        basic = base64.b64encode(codat_api_key.encode()).decode()
        self.codat = httpx.Client(base_url=codat_url, headers={"Authorization": f"Basic {basic}"}, timeout=8)
        self.webhook_key = base64.b64decode(webhook_secret.removeprefix("whsec_"))
        self.customer_ref_key = customer_ref_key.encode()
        self.integrations: list[Any] | None = None
        self.routes: dict[str, Callable[[Event], Result]] = {
            "POST /companies": self.create_company,
            "POST /companies/{companyId}/journeys": self.start_journey,
            "GET /companies": self.list_companies,
            "GET /companies/{companyId}": self.get_company,
            "GET /companies/{companyId}/connections": self.list_connections,
            "GET /companies/{companyId}/events": self.list_events,
            "GET /integrations": self.list_integrations,
            "POST /companies/{companyId}/connections": self.create_connection,
            "GET /companies/{companyId}/access-token": self.access_token,
            "DELETE /companies/{companyId}/connections/{connectionId}": self.revoke,
            "DELETE /companies/{companyId}": self.erase,
            "POST /webhooks/codat": self.webhook,
        }

    def __call__(self, event: Event) -> Result:
        return self.routes[event["routeKey"]](event)

    # -- shared reads ----------------------------------------------------------------------------------

    @staticmethod
    def _customer(event: Event) -> str:
        return str(event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"])

    def _company(self, company_id: str, limit: int | None = None) -> tuple[Item | None, list[Item]]:
        request: dict[str, Any] = {"Limit": limit} if limit is not None else {}
        items = self.db.query(
            TableName=self.table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :co)",
            ExpressionAttributeValues={":pk": _s(f"COMPANY#{company_id}"), ":co": _s("CO")},
            ConsistentRead=True,
            **request,
        )["Items"]
        company = next((i for i in items if i["SK"]["S"] == "COMPANY"), None)
        return company, [i for i in items if i["SK"]["S"] != "COMPANY"]

    def _owner(self, company_id: str) -> str | None:
        item = self.db.get_item(
            TableName=self.table,
            Key={"PK": _s(f"COMPANY#{company_id}"), "SK": _s("COMPANY")},
            ProjectionExpression="customerId",
            ConsistentRead=True,
        ).get("Item")
        return item["customerId"]["S"] if item else None

    def _page(self, company_id: str, prefix: str, limit: int) -> list[Any]:
        items = self.db.query(
            TableName=self.table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            ExpressionAttributeValues={":pk": _s(f"COMPANY#{company_id}"), ":prefix": _s(prefix)},
            ConsistentRead=True,
            Limit=limit,
        )["Items"]
        return [json.loads(i["data"]["S"]) for i in items]

    # -- writes ----------------------------------------------------------------------------------------

    def _put_versioned(self, item: Item, data: dict[str, Any]) -> TransactWriteItemTypeDef:
        version = int(item["version"]["N"])
        data["version"] = version + 1
        saved = {**item, "version": _n(version + 1), "data": _s(json.dumps(data))}
        return {
            "Put": {
                "TableName": self.table,
                "Item": saved,
                "ConditionExpression": "version = :read",
                "ExpressionAttributeValues": {":read": _n(version)},
            }
        }

    def _put_ledger(self, company_id: str, entry_type: str, **fields: Any) -> TransactWriteItemTypeDef:
        entry_id, at = str(uuid.uuid4()), _now()
        data = {"entry_id": entry_id, "company_id": company_id, "type": entry_type, "at": at, **fields}
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "PK": _s(f"COMPANY#{company_id}"),
                    "SK": _s(f"LEDGER#{at}#000#{entry_id}"),
                    "kind": _s("ledger"),
                    "type": _s(entry_type),
                    "data": _s(json.dumps(data)),
                },
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

    def _transact(self, items: list[TransactWriteItemTypeDef]) -> None:
        self.db.transact_write_items(TransactItems=items)

    # -- companies -------------------------------------------------------------------------------------

    def customer_ref(self, customer: str) -> str:
        return hmac.new(self.customer_ref_key, customer.encode(), hashlib.sha256).hexdigest()

    def create_company(self, event: Event) -> Result:
        customer, body = self._customer(event), json.loads(event["body"])
        key = event["headers"]["idempotency-key"]
        digest = hashlib.sha256(f"{customer}\x00{key}".encode()).hexdigest()
        key_item = {"PK": _s(f"IDEMPOTENCY#{digest}"), "SK": _s("IDEMPOTENCY")}
        token, now_s = uuid.uuid4().hex, int(time.time())
        try:
            # The claim the product makes (a lease, a TTL, a released or abandoned claim taken over): the same
            # request, so that the comparison is of the code around it (moto's time grows with the expression).
            self.db.update_item(
                TableName=self.table,
                Key=key_item,
                UpdateExpression=(
                    "SET kind = :kind, #state = :in_progress, fingerprint = :fp, claimToken = :token,"
                    " leaseUntil = :lease, expiresAt = :expires, reachedCodat = if_not_exists(reachedCodat, :false)"
                ),
                ConditionExpression=(
                    "attribute_not_exists(PK) OR expiresAt < :now OR (fingerprint = :fp AND"
                    " (#state = :released OR (#state = :in_progress AND leaseUntil < :now)))"
                ),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":kind": _s("idempotency"),
                    ":in_progress": _s("IN_PROGRESS"),
                    ":released": _s("RELEASED"),
                    ":fp": _s(event["body"]),
                    ":token": _s(token),
                    ":lease": _n(now_s + 60),
                    ":expires": _n(now_s + 86400),
                    ":now": _n(now_s),
                    ":false": {"BOOL": False},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError:
            item = self.db.get_item(TableName=self.table, Key=key_item, ConsistentRead=True)["Item"]
            return {"statusCode": int(item["responseStatus"]["N"]), "body": item["responseBody"]["S"]}
        codat = self.codat.post(
            "/companies",
            json={"name": body["name"], "tags": {"consentCustomerRef": self.customer_ref(customer)}},
            headers={"Idempotency-Key": key},
        ).json()
        now = _now()
        company = {
            "company_id": codat["id"],
            "customer_id": customer,
            "name": body["name"],
            "created_at": now,
            "updated_at": now,
            "journeys": [{"journey": body["journey"], "status": "pending", "started_at": now, "requirements": []}],
            "version": 1,
        }
        answer = json.dumps({**company, "connections": []})
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            "PK": _s(f"COMPANY#{codat['id']}"),
                            "SK": _s("COMPANY"),
                            "GSI1PK": _s(f"CUSTOMER#{customer}"),
                            "GSI1SK": _s(f"{now}#{codat['id']}#COMPANY"),
                            "kind": _s("company"),
                            "customerId": _s(customer),
                            "version": _n(1),
                            "data": _s(json.dumps(company)),
                        },
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                self._put_ledger(codat["id"], "company.created"),
                self._put_ledger(codat["id"], "journey.started", journey=body["journey"]),
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": key_item,
                        "UpdateExpression": "SET #state = :done, responseStatus = :status, responseBody = :body",
                        "ConditionExpression": "claimToken = :token",
                        "ExpressionAttributeNames": {"#state": "state"},
                        "ExpressionAttributeValues": {
                            ":done": _s("COMPLETED"),
                            ":status": _n(201),
                            ":body": _s(answer),
                            ":token": _s(token),
                        },
                    }
                },
            ]
        )
        return {"statusCode": 201, "headers": {"Content-Type": "application/json"}, "body": answer}

    def start_journey(self, event: Event) -> Result:
        company_id = event["pathParameters"]["companyId"]
        company, _ = self._company(company_id)
        if company is None or company["customerId"]["S"] != self._customer(event):
            return _answer(404)
        data = json.loads(company["data"]["S"])
        journey = json.loads(event["body"])["journey"]
        data["journeys"].append({"journey": journey, "status": "pending", "started_at": _now(), "requirements": []})
        self._transact(
            [self._put_versioned(company, data), self._put_ledger(company_id, "journey.started", journey=journey)]
        )
        return _answer(200, data)

    def list_companies(self, event: Event) -> Result:
        items = self.db.query(
            TableName=self.table,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues={":pk": _s(f"CUSTOMER#{self._customer(event)}")},
            ScanIndexForward=False,
            Limit=250,
        )["Items"]
        companies: list[dict[str, Any]] = []
        connections: list[Any] = []
        for item in items:
            if item["SK"]["S"] == "COMPANY":
                companies.append({**json.loads(item["data"]["S"]), "connections": connections})
                connections = []
            else:
                connections.append(json.loads(item["data"]["S"]))
        return _answer(200, {"items": companies[:20]})

    def get_company(self, event: Event) -> Result:
        company, connections = self._company(event["pathParameters"]["companyId"], limit=101)
        if company is None or company["customerId"]["S"] != self._customer(event):
            return _answer(404)
        return _answer(
            200, {**json.loads(company["data"]["S"]), "connections": [json.loads(c["data"]["S"]) for c in connections]}
        )

    # -- connections -----------------------------------------------------------------------------------

    def list_connections(self, event: Event) -> Result:
        company_id = event["pathParameters"]["companyId"]
        if self._owner(company_id) != self._customer(event):
            return _answer(404)
        return _answer(200, {"items": self._page(company_id, "CONNECTION#", 100)})

    def list_events(self, event: Event) -> Result:
        company_id = event["pathParameters"]["companyId"]
        if self._owner(company_id) != self._customer(event):
            return _answer(404)
        return _answer(200, {"items": self._page(company_id, "LEDGER#", 50)})

    def list_integrations(self, event: Event) -> Result:
        if self.integrations is None:
            page = self.codat.get("/integrations", params={"page": 1, "pageSize": 500, "query": "enabled=true"})
            self.integrations = page.json()["results"]
        return _answer(200, {"items": self.integrations})

    def create_connection(self, event: Event) -> Result:
        company_id = event["pathParameters"]["companyId"]
        platform_key = json.loads(event["body"])["platformKey"]
        company, connections = self._company(company_id)
        if company is None or company["customerId"]["S"] != self._customer(event):
            return _answer(404)
        for item in connections:
            existing = json.loads(item["data"]["S"])
            if existing["platform_key"] == platform_key:
                fresh = self.codat.get(f"/companies/{company_id}/connections/{existing['connection_id']}").json()
                self._transact([self._put_ledger(company_id, "connection.link_requested", platform_key=platform_key)])
                return _answer(200, {**existing, "link_url": fresh["linkUrl"]})
        data = json.loads(company["data"]["S"])
        created = self.codat.post(
            f"/companies/{company_id}/connections",
            json={"platformKey": platform_key},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        ).json()
        connection = {
            "connection_id": created["id"],
            "platform_key": platform_key,
            "platform_name": created["platformName"],
            "status": "PendingAuth",
            "created_at": created["created"],
            "version": 1,
        }
        connection_item = {
            "PK": _s(f"COMPANY#{company_id}"),
            "SK": _s(f"CONNECTION#{created['id']}"),
            "kind": _s("connection"),
            "version": _n(1),
            "data": _s(json.dumps(connection)),
        }
        self._transact(
            [
                self._put_versioned(company, data),
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": connection_item,
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                self._put_ledger(company_id, "connection.created", connection_id=created["id"]),
            ]
        )
        return _answer(201, {**connection, "link_url": created["linkUrl"]})

    def access_token(self, event: Event) -> Result:
        company_id = event["pathParameters"]["companyId"]
        if self._owner(company_id) != self._customer(event):
            return _answer(404)
        token = self.codat.get(f"/companies/{company_id}/accessToken").json()
        return _answer(200, {"accessToken": token["accessToken"], "expiresIn": token["expiresIn"]})

    def revoke(self, event: Event) -> Result:
        company_id, connection_id = event["pathParameters"]["companyId"], event["pathParameters"]["connectionId"]
        company, connections = self._company(company_id)
        if company is None or company["customerId"]["S"] != self._customer(event):
            return _answer(404)
        item = next((c for c in connections if c["SK"]["S"] == f"CONNECTION#{connection_id}"), None)
        if item is None:
            return _answer(404)
        connection = json.loads(item["data"]["S"])
        if connection["status"] != "Linked":
            return _answer(200, connection)
        unlinked = self.codat.patch(
            f"/companies/{company_id}/connections/{connection_id}", json={"status": "Unlinked"}
        ).json()
        connection["status"] = unlinked["status"]
        self._transact(
            [
                self._put_versioned(company, json.loads(company["data"]["S"])),
                self._put_versioned(item, connection),
                self._put_ledger(company_id, "consent.revoked", connection_id=connection_id),
            ]
        )
        return _answer(200, connection)

    def erase(self, event: Event) -> Result:
        company_id = event["pathParameters"]["companyId"]
        company, _ = self._company(company_id)
        if company is None or company["customerId"]["S"] != self._customer(event):
            return _answer(404)
        self.codat.delete(f"/companies/{company_id}")
        keys = self.db.query(
            TableName=self.table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": _s(f"COMPANY#{company_id}")},
            ConsistentRead=True,
            ProjectionExpression="PK, SK, idempotencyPK",
        )["Items"]
        rest: list[WriteRequestTypeDef] = [
            {"DeleteRequest": {"Key": {"PK": k["PK"], "SK": k["SK"]}}} for k in keys if k["SK"]["S"] != "COMPANY"
        ]
        self.db.batch_write_item(RequestItems={self.table: rest[:25]})
        final: list[TransactWriteItemTypeDef] = [
            {"Delete": {"TableName": self.table, "Key": {"PK": company["PK"], "SK": company["SK"]}}},
            self._put_ledger(company_id, "company.erased"),
        ]
        if "idempotencyPK" in company:  # the remembered create response holds the company's name: keep the key only
            key = {"PK": company["idempotencyPK"], "SK": _s("IDEMPOTENCY")}
            spend = "SET #s = :erased, expiresAt = :until REMOVE fingerprint, responseStatus, responseBody"
            values = {":erased": _s("ERASED"), ":until": {"N": str(int(time.time()) + 7200)}}
            final.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": key,
                        "UpdateExpression": spend,
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        self._transact(final)
        return {"statusCode": 204, "headers": {}}

    # -- Codat's webhooks ------------------------------------------------------------------------------

    def webhook(self, event: Event) -> Result:
        headers, raw = event["headers"], event["body"].encode()
        message_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
        expected = hmac.new(self.webhook_key, f"{message_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
        offered = [base64.b64decode(s.partition(",")[2]) for s in headers["webhook-signature"].split(" ")]
        if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return _answer(401)
        body = json.loads(raw)
        marker = {"PK": _s(f"WEBHOOK#{message_id}"), "SK": _s("WEBHOOK")}
        if "Item" in self.db.get_item(TableName=self.table, Key=marker, ConsistentRead=True):
            return {"statusCode": 204, "headers": {}}
        payload = body["payload"]
        company_id = payload["referenceCompany"]["id"]
        company, connections = self._company(company_id)
        assert company is not None, "the floor handles known companies only"
        touched = {c["connectionId"] for c in payload.get("dataTypes", [])} or {payload["connection"]["id"]}
        writes: list[TransactWriteItemTypeDef] = [self._put_versioned(company, json.loads(company["data"]["S"]))]
        for item in connections:
            data = json.loads(item["data"]["S"])
            if data["connection_id"] in touched:
                data["status"] = payload.get("connection", {}).get("status", data["status"])
                writes.append(self._put_versioned(item, data))
        writes.append(self._put_ledger(company_id, body["eventType"], webhook_id=message_id))
        writes.append({"Put": {"TableName": self.table, "Item": {**marker, "kind": _s("webhook")}}})
        self._transact(writes)
        return {"statusCode": 204, "headers": {}}
