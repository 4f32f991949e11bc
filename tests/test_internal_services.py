"""The internal services (the action server; Rasa in tests/test_e2e.py) answer only the
Madoguchi services on this machine: bound to loopback, the internal token required,
JSON only. The action server is started exactly as the launcher starts it."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import httpx
import pytest

from assistant.operations.keys import INTERNAL_TOKEN_HEADER, internal_token, load_secret
from assistant.operations.launcher import Stack
from knowledge.store import open_db
from tests.conftest import free_ports, make_settings

# What an attacker posts: Rasa's action call for action_handoff, for a made-up sender.
FORGED_CALL = {
    "next_action": "action_handoff",
    "sender_id": "forged-sender-0001",
    "tracker": {
        "sender_id": "forged-sender-0001",
        "slots": {},
        "latest_message": {"text": "人と話したい", "intent": {"name": "human"}},
        "events": [
            {"event": "user", "text": "攻撃者の文章", "metadata": {"page": "https://evil.example/"}}
        ],
        "latest_input_channel": "rest",
        "active_loop": {},
        "latest_action_name": "action_listen",
        "paused": False,
        "followup_action": None,
        "latest_event_time": 0,
    },
    "domain": {},
    "version": "3.6.21",
}


def non_loopback_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (``hostname -I``)."""
    try:
        found = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return []
    return [a for a in found.stdout.split() if "." in a and not a.startswith("127.")]


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (/proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, _remote, state = line.split()[1:4]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    if len(address) == 8:
                        found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                    else:
                        found.add(address)
    return found


@pytest.fixture(scope="module")
def actions(tmp_path_factory):
    """The launcher's action-server service, alone, over an empty knowledge home."""
    home = tmp_path_factory.mktemp("actions") / "home"
    api, rasa, action = free_ports(3)
    settings = make_settings(
        home,
        MADOGUCHI_API_PORT=str(api),
        MADOGUCHI_RASA_PORT=str(rasa),
        MADOGUCHI_ACTION_PORT=str(action),
    )
    open_db(settings.database_path).close()
    settings.rasa_model_path.parent.mkdir(parents=True)
    settings.rasa_model_path.write_bytes(b"")  # the launcher checks it exists; unused here
    stack = Stack(settings, env=dict(os.environ))
    service = next(s for s in stack.services if s.name == "actions")
    stack.launch(service)
    try:
        stack.wait_healthy([service], 120)
        yield settings
    finally:
        stack.stop()


def tickets(settings) -> int:
    db = open_db(settings.database_path)
    try:
        return db["tickets"].count
    finally:
        db.close()


def test_a_cross_site_text_plain_post_is_refused(actions):
    """Regression: rasa_sdk read a text/plain body as JSON, so any web page open on the
    office LAN could run action_handoff (a simple cross-site POST needs no preflight)."""
    url = f"{actions.action_url}/webhook"
    body = json.dumps(FORGED_CALL)
    token = internal_token(load_secret(actions.secret_path))
    for headers in (
        {"Content-Type": "text/plain", "Origin": "https://evil.example"},
        {"Content-Type": "text/plain", INTERNAL_TOKEN_HEADER: token},  # even with the token
        {"Content-Type": "application/x-www-form-urlencoded", INTERNAL_TOKEN_HEADER: token},
    ):
        response = httpx.post(url, content=body, headers=headers)
        assert response.status_code in (401, 415), (headers, response.text)
        assert "access-control-allow-origin" not in response.headers
    assert tickets(actions) == 0


def test_a_json_post_without_the_internal_token_is_refused(actions):
    url = f"{actions.action_url}/webhook"
    for headers in ({}, {INTERNAL_TOKEN_HEADER: "0" * 64}, {INTERNAL_TOKEN_HEADER: ""}):
        response = httpx.post(url, json=FORGED_CALL, headers=headers)
        assert response.status_code == 401, response.text
    assert httpx.get(f"{actions.action_url}/actions").status_code == 401
    assert tickets(actions) == 0
    # With the token (what Rasa sends, from its endpoints file) the server answers.
    token = internal_token(load_secret(actions.secret_path))
    listed = httpx.get(f"{actions.action_url}/actions", headers={INTERNAL_TOKEN_HEADER: token})
    assert listed.status_code == 200
    assert "action_handoff" in {a["name"] for a in listed.json()}
    assert httpx.get(f"{actions.action_url}/health").status_code == 200


def test_the_action_server_listens_on_loopback_only(actions):
    """Regression: it listened on 0.0.0.0, reachable from any host on the network."""
    assert listening_addresses(actions.action_port) == {"127.0.0.1"}
    for address in non_loopback_addresses():
        with pytest.raises(OSError):
            socket.create_connection((address, actions.action_port), timeout=2).close()


def test_the_rasa_files_holding_the_token_are_private(actions):
    token = internal_token(load_secret(actions.secret_path))
    for name in ("endpoints.yml", "credentials.yml"):
        path = actions.rasa_dir / name
        assert path.stat().st_mode & 0o777 == 0o600, name
        assert token in path.read_text(encoding="utf-8"), name
    assert (actions.home / "logs" / "actions.log").stat().st_mode & 0o777 == 0o600


def test_the_internal_address_is_a_setting(tmp_path):
    settings = make_settings(tmp_path, MADOGUCHI_BIND_INTERNAL="0.0.0.0")
    assert settings.action_url.startswith("http://127.0.0.1:")
    settings = make_settings(tmp_path, MADOGUCHI_BIND_INTERNAL="192.0.2.2")
    assert settings.rasa_url.startswith("http://192.0.2.2:")
    from assistant.operations.config import ConfigError

    with pytest.raises(ConfigError, match="MADOGUCHI_BIND_INTERNAL"):
        make_settings(tmp_path, MADOGUCHI_BIND_INTERNAL="localhost:80")
