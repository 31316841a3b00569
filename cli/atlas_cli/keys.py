"""``atlas keys create|list|revoke``: the admin's key management from a terminal, with the credentials the
first ``atlas up`` saved in ``STATE_DIR/admin.json`` (mode 0600)."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

import httpx

from atlas_cli.plan import write_private
from atlas_core.settings import SettingsError

ADMIN_FILE = "admin.json"


def save_admin(state_dir: Path, record: dict[str, str]) -> Path:
    path = state_dir / ADMIN_FILE
    write_private(path, json.dumps(record, indent=2) + "\n")
    return path


class PortalSession:
    def __init__(self, state_dir: Path) -> None:
        try:
            admin = json.loads((state_dir / ADMIN_FILE).read_text())
        except (OSError, ValueError):
            raise SettingsError(f"no admin credentials in {state_dir / ADMIN_FILE}: they are written on the first "
                                "`atlas up` of this state directory") from None
        self.url = admin["portal_url"]
        try:
            login = httpx.post(f"{self.url}/api/auth/login", timeout=10,
                               json={"username": admin["username"], "password": admin["password"]})
        except httpx.HTTPError:
            raise SettingsError(f"api-portal is not reachable at {self.url}: is ATLAS up (`atlas status`)?") from None
        if login.status_code != 200:
            raise SettingsError(f"the portal refused the saved admin login: {error_message(login)} (if the password "
                                "was changed, `atlas admin recover` sets a new one and saves it)")
        self.headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def close(self) -> None:
        """End this login (each command logs in once; sessions per user are capped)."""
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{self.url}/api/auth/logout", headers=self.headers, timeout=10)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.url}{path}", headers=self.headers, timeout=10, **kwargs)
        if response.status_code >= 400:
            raise SettingsError(f"the portal answered {response.status_code}: {error_message(response)}")
        return response.json() if response.content else None


def error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _limit(value: int) -> str:
    return str(value) if value else "∞"


def run(args: argparse.Namespace, state_dir: Path) -> int:
    portal = PortalSession(state_dir)
    try:
        return _run(args, portal)
    finally:
        portal.close()


def _run(args: argparse.Namespace, portal: PortalSession) -> int:
    if args.keys_command == "list":
        keys = portal.call("GET", "/api/keys")
        if args.json:
            print(json.dumps(keys, indent=2))
            return 0
        print(f"{'ID':>4}  {'NAME':<20} {'KEY':<16} {'OWNER':>5} {'REQ/MIN':>8} {'TOK/MIN':>9} {'CONC':>5}  STATUS")
        for key in keys:
            status = "active" if key["is_active"] else "revoked"
            print(f"{key['id']:>4}  {key['name'][:20]:<20} {key['prefix'] + '…':<16} {key['user_id']:>5} "
                  f"{_limit(key['rate_limit']):>8} {_limit(key['tokens_per_min']):>9} "
                  f"{_limit(key['max_concurrent']):>5}  {status}")
        return 0
    if args.keys_command == "create":
        body: dict[str, Any] = {"name": args.name, "rate_limit": args.rpm, "tokens_per_min": args.tpm,
                                "max_concurrent": args.concurrency, "expires_days": args.expires_days}
        if args.models:
            body["allowed_models"] = [m.strip() for m in args.models.split(",") if m.strip()]
        created = portal.call("POST", "/api/keys", json={k: v for k, v in body.items() if v is not None})
        print(f"created key {created['id']} ({created['name']}); it is shown only this once:")
        print(created["key"])
        return 0
    keys = {k["id"]: k for k in portal.call("GET", "/api/keys")}
    if args.id not in keys:
        raise SettingsError(f"no key {args.id}; `atlas keys list` shows them")
    if not keys[args.id]["is_active"]:
        print(f"key {args.id} was already revoked")
        return 0
    portal.call("PATCH", f"/api/keys/{args.id}/toggle")
    print(f"revoked key {args.id} ({keys[args.id]['name']}); it stops working within a second")
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    keys: argparse.ArgumentParser = sub.add_parser(
        "keys", parents=[common], help="create, list or revoke sk-llm- API keys (as the admin)")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list every key")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("name", help="a name to tell the key apart")
    create.add_argument("--rpm", type=int, help="requests per minute (0: unlimited; default: the portal's)")
    create.add_argument("--tpm", type=int, help="tokens per minute (0: unlimited)")
    create.add_argument("--concurrency", type=int, help="concurrent requests (0: unlimited)")
    create.add_argument("--models", help="comma-separated models the key may use (default: all)")
    create.add_argument("--expires-days", type=int, help="days until the key expires (default: never)")
    revoke = actions.add_parser("revoke", help="revoke a key (within a second, everywhere)")
    revoke.add_argument("id", type=int, help="the key's id, from `atlas keys list`")
    return keys
