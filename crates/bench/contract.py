#!/usr/bin/env python3
"""Contract test: does the running server keep the promises of openapi.yaml?

Starts a freshly built safebox (target/debug/safebox by default) on a temporary
data dir and a free port, registers a user and logs in, then runs schemathesis
against openapi.yaml with that bearer token, checking that no response is a
server error (5xx), and that every response's status code is documented for its
operation, its Content-Type is one the operation documents, and its body matches
the documented schema. The server is always stopped afterwards.

The operations that can end the test user's session run in a second pass with a
fresh token (see SESSION_ENDING). Environment: CONTRACT_SEED (default 1, so CI
runs are reproducible) and CONTRACT_LOG (the server's SAFEBOX_LOG, default warn).

Run through `make contract`, which builds the binary and installs the pinned
schemathesis into target/contract-venv. Extra arguments are passed on to
`schemathesis run` (e.g. `--max-examples 20`, `--seed 1`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECKS = ",".join(
    [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    ]
)


# Operations that can end the test user's session (logout, ending sessions,
# spending a refresh token, a password change, deleting the account). Run first
# with them, the session would soon be gone and every other authenticated
# operation would only ever answer 401. So they get a second run of their own,
# with a fresh token.
SESSION_ENDING = [
    "logoutAuth",
    "logout",
    "deleteCurrentSession",
    "deleteSession",
    "refreshToken",
    "changePassword",
    "deleteUser",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as err:
        return err.code, {}


def put_secret(url: str, token: str, value: str) -> int:
    """PUT a vault secret and read it back; returns the PUT's status."""
    req = urllib.request.Request(
        url, data=json.dumps({"value": value}).encode(), method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        return err.code
    read = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(read, timeout=10) as response:
        if json.loads(response.read()).get("value") != value:
            sys.exit("contract: the canary secret did not read back")
    return status


def wait_until_up(base: str, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"contract: safebox exited with status {server.returncode} before serving")
        try:
            if request(f"{base}/")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"contract: safebox did not answer on {base} within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Where `cargo build` put the binary: CARGO_TARGET_DIR when set.
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    parser.add_argument("--binary", default=str(target / "debug" / "safebox"))
    parser.add_argument(
        "--schemathesis", default=str(ROOT / "target/contract-venv/bin/schemathesis")
    )
    parser.add_argument("--spec", default=str(ROOT / "openapi.yaml"))
    args, extra = parser.parse_known_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tempfile.mkdtemp(prefix="safebox-contract-")
    # Nothing from the caller's own safebox settings (a database URL, keys, a
    # config file) may reach the throwaway server.
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("SAFEBOX_")},
        "SAFEBOX_HOST": "127.0.0.1",
        "SAFEBOX_PORT": str(port),
        "SAFEBOX_DATA_DIR": data_dir,
        "SAFEBOX_BCRYPT_COST": "4",
        # Schemathesis sends thousands of requests, many to the credential routes:
        # the per-IP limit (0 turns it off) and the account lockout would answer
        # most of them with 429 and hide the behaviour under test.
        "SAFEBOX_IP_RATE_PER_MINUTE": "0",
        "SAFEBOX_LOCKOUT_THRESHOLD": "1000000",
        # Long enough for the whole run.
        "SAFEBOX_ACCESS_TOKEN_TTL": "3600",
        # Debug logs, as JSON, so that the leak check below reads everything the
        # server could ever write about a request.
        "SAFEBOX_LOG": os.environ.get("CONTRACT_LOG", "debug"),
        "SAFEBOX_LOG_FORMAT": "json",
        "SAFEBOX_MASTER_KEYS": "contract-1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "SAFEBOX_JWT_SECRET": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    # Everything that must never appear in a log line: keys, the password, every
    # token and refresh token issued, and a secret value.
    never_logged: dict[str, str] = {
        "master key": env["SAFEBOX_MASTER_KEYS"].split(":", 1)[1],
        "JWT secret": env["SAFEBOX_JWT_SECRET"],
    }
    log_path = Path(data_dir) / "server.log"
    log = open(log_path, "wb")
    server = subprocess.Popen(
        [args.binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    passed = False
    try:
        wait_until_up(base, server)
        username = "contract" + secrets.token_hex(4)
        password = "contract-" + secrets.token_urlsafe(16)
        status, _ = request(
            f"{base}/register",
            {"email": f"{username}@example.com", "username": username, "password": password},
        )
        if status != 201:
            sys.exit(f"contract: registering the test user answered {status}")
        never_logged["password"] = password

        def token() -> str:
            status, body = request(f"{base}/login", {"username": username, "password": password})
            if status != 200 or "token" not in body:
                sys.exit(f"contract: logging the test user in answered {status}")
            never_logged[f"access token {len(never_logged)}"] = body["token"]
            never_logged[f"refresh token {len(never_logged)}"] = body["refresh_token"]
            return body["token"]

        canary = "canary-" + secrets.token_urlsafe(16)
        never_logged["secret value"] = canary
        status = put_secret(f"{base}/secrets/contract/canary", token(), canary)
        if status != 201:
            sys.exit(f"contract: storing the canary secret answered {status}")

        def schemathesis(selection: list[str]) -> int:
            command = [
                args.schemathesis,
                "run",
                args.spec,
                "--url",
                base,
                "--header",
                f"Authorization: Bearer {token()}",
                "--checks",
                CHECKS,
                "--seed",
                os.environ.get("CONTRACT_SEED", "1"),
                "--output-truncate",
                "false",
                *selection,
                *extra,
            ]
            shown = ["Authorization: Bearer …" if "Bearer" in c else c for c in command]
            print("contract: " + " ".join(shown), flush=True)
            env = {**os.environ, "NO_COLOR": "1"}
            # Schemathesis keeps its state in ./.schemathesis: under target/, not in
            # the repository.
            workdir = ROOT / "target" / "contract"
            workdir.mkdir(parents=True, exist_ok=True)
            return subprocess.run(command, cwd=workdir, env=env).returncode

        exclude = [arg for op in SESSION_ENDING for arg in ("--exclude-operation-id", op)]
        include = [arg for op in SESSION_ENDING for arg in ("--include-operation-id", op)]
        failed = [code for code in (schemathesis(exclude), schemathesis(include)) if code]
        if failed:
            print(f"contract: FAILED; the server's log is in {log_path}", file=sys.stderr)
            return failed[0]
        stop(server)
        log.close()
        # Tokens appear in the log JSON-escaped at worst; base64 keys have no
        # characters JSON would escape except '/', which serde_json leaves alone.
        written = log_path.read_text("utf-8", "replace")
        leaked = [what for what, value in never_logged.items() if value in written]
        if leaked:
            print(f"contract: FAILED; the server's log ({log_path}) holds: "
                  + ", ".join(leaked), file=sys.stderr)
            return 1
        print(f"contract: OK; {len(written.splitlines())} log lines hold none of "
              f"{len(never_logged)} secrets (keys, password, tokens, a secret value)")
        passed = True
        return 0
    finally:
        stop(server)
        if not log.closed:
            log.close()
        if passed:
            shutil.rmtree(data_dir, ignore_errors=True)


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
