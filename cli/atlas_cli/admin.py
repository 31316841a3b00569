"""``atlas admin recover``: the host's way back into the portal when the admin is locked out (a forgotten password,
throttling under attack, a deactivated account). It needs the recovery credential in the state directory (mode
0600), so only the host's operator can use it; it sets a new generated password, clears the account's login
throttling, ends its sessions and reactivates it, and updates ``admin.json`` when it is that account."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import httpx

from atlas_cli.keys import ADMIN_FILE, error_message, save_admin
from atlas_cli.runner import prepare
from atlas_core.settings import SettingsError


def run(args: argparse.Namespace, state_dir: Path) -> int:
    config = prepare({"ATLAS_STATE_DIR": str(state_dir)}, args.conf)
    url = config.values["ATLAS_PORTAL_URL"]
    try:
        response = httpx.post(f"{url}/internal/recover", json={"username": args.username}, timeout=30,
                              headers={"Authorization": f"Bearer {config.values['ATLAS_RECOVERY_TOKEN']}"})
    except httpx.HTTPError:
        raise SettingsError(f"api-portal is not reachable at {url}: is ATLAS up (`atlas status`)?") from None
    if response.status_code != 200:
        raise SettingsError(f"the portal refused the recovery ({response.status_code}): {error_message(response)}")
    recovered = response.json()
    print(f"account '{recovered['username']}': new password {recovered['password']}")
    print("its login throttling is cleared and every earlier session has ended")
    saved = state_dir / ADMIN_FILE
    try:
        admin: dict[str, Any] = json.loads(saved.read_text())
    except (OSError, ValueError):
        return 0
    if admin.get("username") == recovered["username"]:
        save_admin(state_dir, admin | {"password": recovered["password"]})
        print(f"updated {saved} (the atlas CLI logs in with it)")
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    admin: argparse.ArgumentParser = sub.add_parser(
        "admin", parents=[common], help="recover the admin's access on this host")
    actions = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    recover = actions.add_parser("recover", help="new password, throttling cleared, sessions ended")
    recover.add_argument("username", nargs="?", default="admin", help="the account (default: admin)")
    return admin
