#!/usr/bin/env python3
"""Prepares the HTTP benchmark through the API itself: one enterprise with an API key, and
ACCOUNTS accounts of it, each funded with FUNDS fen (a deposit by the operator into the
enterprise's operating account, then atomic batches from there).

usage: setup.py BASE_URL OPERATOR_KEY ACCOUNTS FUNDS ACCOUNTS_FILE
Prints the enterprise's API key; writes the account ids to ACCOUNTS_FILE, one per line."""
import json
import sys
import urllib.request
import uuid

base, operator, count, funds, accounts_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]


def call(method, path, key, body=None):
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


enterprise = call("POST", "/v1/organizations", operator, {"name": "Bench Enterprise " + uuid.uuid4().hex[:8], "kind": "enterprise", "country": "CN"})
key = call("POST", f"/v1/organizations/{enterprise['id']}/api-keys", operator, {"label": "bench"})["key"]
accounts = [str(uuid.uuid4()) for _ in range(count)]
for account in accounts:
    call("POST", "/v1/accounts", key, {"id": account, "owner_id": enterprise["id"], "currency": "CNY"})
deposit = call("POST", "/v1/deposits", operator, {"organization_id": enterprise["id"], "amount": count * funds, "currency": "CNY",
                                                   "external_ref": "BENCH-" + uuid.uuid4().hex})
operating = deposit["credit_account_id"]
for start in range(0, count, 1000):
    transfers = [{"id": str(uuid.uuid4()), "debit_account_id": operating, "credit_account_id": account, "amount": funds, "currency": "CNY"}
                 for account in accounts[start:start + 1000]]
    results = call("POST", "/v1/transfers/batch", key, {"atomic": True, "transfers": transfers})["results"]
    refused = [r for r in results if r.get("outcome") != "ok"]
    if refused:
        sys.exit(f"setup.py: funding refused: {refused[:3]}")
with open(accounts_file, "w") as out:
    out.write("\n".join(accounts) + "\n")
print(key)
