"""`accord gateway run` and `accord password set`, run as an operator and a person would."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from accord.v1 import local_pb2
from node.client import connect
from tests.harness import Federation, add_user

NL = "NL-POL"
PASSWORD = "a long enough passphrase"


async def accord(*args: str, stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_password_set_then_the_gateway_serves_a_login(fed3: Federation) -> None:
    nl, _, _ = await fed3.start_all()
    home = str(nl.config.home)
    await add_user(nl, "anna", "liaison_officer")
    code, _, err = await accord(
        "password", "set", "--as", "anna", "--home", home, "--password-stdin", stdin="short\n"
    )
    assert code == 2 and err.startswith("accord: error: invalid argument: a password needs 12")
    assert len(err.strip().splitlines()) == 1
    code, out, err = await accord(
        "password", "set", "--as", "anna", "--home", home, "--password-stdin", stdin=PASSWORD
    )
    assert code == 0, err
    assert out.strip() == "password set"

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node.cli",
        "gateway",
        "run",
        "--home",
        home,
        "--listen",
        "127.0.0.1:0",
        "--server-name",
        "gw.example",
        "--trusted-proxy",
        "127.0.0.1",
        "--login-rate",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith(f"gateway for {NL} ready on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].strip()
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            assert (await c.get("/healthz")).json() == {"node": "serving"}
            answer = await c.post("/api/v1/login", json={"name": "anna", "password": PASSWORD})
            assert answer.status_code == 200
            assert (await c.get("/healthz", headers={"Host": "GW.example"})).status_code == 200
            assert (await c.get("/healthz", headers={"Host": "gw2.example"})).status_code == 400
            # Behind the trusted proxy, each client has its own allowance of one attempt.
            tries = [
                await c.post(
                    "/api/v1/login",
                    json={"name": "anna", "password": "wrong password!"},
                    headers={"X-Forwarded-For": client},
                )
                for client in ("198.51.100.1", "198.51.100.1", "198.51.100.2")
            ]
            assert [t.status_code for t in tries] == [401, 429, 401]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        log = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "GET /healthz 200" in log and "POST /api/v1/login 200" in log
    assert PASSWORD not in log and "anna" not in log

    async with connect(nl.config.home, anonymous=True) as c:
        session = await c.api.Login(local_pb2.LoginRequest(name="anna", password=PASSWORD))
    assert session.user.name == "anna"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--node-tls", "--tls-cert", "c", "--tls-key", "k"], "not both"),
        (["--tls-cert", "nope.pem", "--tls-key", "nope.key"], "nope.pem: no such file"),
        (["--listen", "nonsense"], "--listen: expected HOST:PORT"),
        (["--login-rate", "0"], "argument --login-rate: 0 is out of range (1 to 10000)"),
        (["--trusted-proxy", "proxy.example"], "'proxy.example' is not an IP address or network"),
        (["--trusted-proxy", "10.0.0.1/8"], "argument --trusted-proxy: '10.0.0.1/8' is not"),
        (["--server-name", "gw.example:443"], "argument --server-name: 'gw.example:443' is not"),
        (["--server-name", "gw example"], "'gw example' is not a host name or address"),
        (["--listen", "0.0.0.0:0"], "passwords and session cookies in clear; serve HTTPS"),
        (["--listen", "[::]:0"], "--listen [::]:0: plain HTTP off this machine"),
        (["--listen", "gw.example:0"], "or add --insecure-http"),
        # Allowed with --insecure-http: then it fails only at listening on an address not ours.
        (["--listen", "192.0.2.1:0", "--insecure-http"], "--listen 192.0.2.1:0: cannot listen"),
    ],
)
async def test_gateway_run_refuses_bad_arguments(
    fed3: Federation, args: list[str], message: str
) -> None:
    home = str(fed3.homes[NL])
    code, out, err = await accord("gateway", "run", "--home", home, *args)
    assert code == 2 and out == ""
    assert err.startswith("accord: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


async def test_the_gateway_key_is_private(fed3: Federation) -> None:
    home = fed3.homes[NL]
    key = home / "gateway.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o644)
    code, _, err = await accord("gateway", "run", "--home", str(home), "--listen", "127.0.0.1:0")
    assert code == 2 and err.strip() == f"accord: error: {key} is open to others: `chmod 600` it"


async def test_gateway_run_needs_a_node_home_and_a_free_port(
    fed3: Federation, tmp_short: Path
) -> None:
    code, _, err = await accord("gateway", "run", "--home", str(tmp_short / "nothing"))
    assert code == 2 and "config.toml not found" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await accord(
            "gateway", "run", "--home", str(fed3.homes[NL]), "--listen", f"127.0.0.1:{port}"
        )
    assert code == 2 and "cannot listen" in err and len(err.strip().splitlines()) == 1
