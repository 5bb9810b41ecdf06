"""People's passwords and login sessions on the local API (what the gateway stands on): real
nodes, real sockets, the node's own clock moved forward for expiry and lockout."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from accord.v1 import local_pb2
from accord.v1 import message_pb2 as pb
from node import config as config_mod
from node.client import connect
from node.clock import OffsetClock
from node.errors import ConfigError
from tests.harness import Federation, add_user, incident, liaison, second_admin, wait_for

NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
PASSWORD = "correct horse battery staple"


def set_login(home: Path, **values: object) -> None:
    """Change fields of the [login] section of a node's config.toml, as an operator would."""
    path = home / config_mod.CONFIG_FILE
    text = path.read_text()
    for key, value in values.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    path.write_text(text)


async def set_password(home: Path, user: str, password: str = PASSWORD) -> None:
    async with connect(home, user=user) as c:
        await c.api.SetPassword(local_pb2.SetPasswordRequest(new_password=password))


async def login(home: Path, name: str, password: str = PASSWORD) -> Any:
    async with connect(home, anonymous=True) as c:
        return await c.api.Login(local_pb2.LoginRequest(name=name, password=password))


async def call(home: Path, token: str, method: str, request: Any) -> Any:
    async with connect(home, token=token) as c:
        return await getattr(c.api, method)(request)


async def refused(coro: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coro
    return caught.value


def trailer(exc: grpc.aio.AioRpcError, key: str) -> str:
    return str(dict(exc.trailing_metadata() or ()).get(key, ""))


async def test_a_session_acts_as_its_user_until_logout(fed3: Federation) -> None:
    _, de, _ = await fed3.start_all()
    home = de.config.home
    await add_user(de, "bert", "liaison_officer")
    await set_password(home, "bert")

    session = await login(home, "bert")
    assert session.user.name == "bert" and session.user.role == "liaison_officer"
    assert session.idle_seconds == 1800 and session.session_token
    me = await call(home, session.session_token, "WhoAmI", local_pb2.WhoAmIRequest())
    assert me.name == "bert"
    await call(home, session.session_token, "Inbox", local_pb2.InboxRequest())

    # Logout is for sessions: the user's own token is not a session to end.
    async with connect(home, user="bert") as c:
        error = await refused(c.api.Logout(local_pb2.LogoutRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

    await call(home, session.session_token, "Logout", local_pb2.LogoutRequest())
    error = await refused(call(home, session.session_token, "WhoAmI", local_pb2.WhoAmIRequest()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED

    # Wrong password, unknown user, user without a password: one answer for all three.
    await add_user(de, "nopass", "liaison_officer")
    answers = [
        await refused(login(home, "bert", "not the password at all")),
        await refused(login(home, "nobody", PASSWORD)),
        await refused(login(home, "nopass", PASSWORD)),
    ]
    assert {(e.code(), e.details()) for e in answers} == {
        (
            grpc.StatusCode.UNAUTHENTICATED,
            "wrong user name or password (an account is also locked for a while after too "
            "many failed logins in a row)",
        )
    }
    async with connect(home, user="admin") as c:
        log = (await c.api.AccessLog(local_pb2.AccessLogRequest())).entries
    logins = [(e.user, e.action, e.outcome) for e in log if e.action in ("login", "logout")]
    assert ("bert", "login", "granted") in logins and ("bert", "logout", "granted") in logins
    assert ("bert", "login", "refused") in logins
    assert not any(e.user == "nobody" for e in log), "names that are no user are not logged"
    assert not any(PASSWORD in str(e) or "not the password" in str(e) for e in log)


async def test_only_login_goes_without_a_token(fed3: Federation) -> None:
    _, de, _ = await fed3.start_all()
    async with connect(de.config.home, anonymous=True) as c:
        for method, request in (
            ("WhoAmI", local_pb2.WhoAmIRequest()),
            ("Logout", local_pb2.LogoutRequest()),
            ("SetPassword", local_pb2.SetPasswordRequest(new_password=PASSWORD)),
            ("Members", local_pb2.MembersRequest()),
        ):
            error = await refused(getattr(c.api, method)(request))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, method


async def test_a_session_expires_when_idle_and_at_its_limit(tmp_short: Path) -> None:
    clock = OffsetClock()
    fed = Federation(tmp_short, [NL, DE], clock=clock)
    set_login(fed.homes[DE], session_idle_seconds=60.0, session_max_seconds=150.0)
    try:
        de = await fed.start(DE)
        home = de.config.home
        await add_user(de, "bert", "liaison_officer")
        await set_password(home, "bert")

        idle = (await login(home, "bert")).session_token
        clock.advance(timedelta(seconds=50))
        await call(home, idle, "WhoAmI", local_pb2.WhoAmIRequest())  # a use: idle starts again
        clock.advance(timedelta(seconds=50))
        await call(home, idle, "WhoAmI", local_pb2.WhoAmIRequest())
        clock.advance(timedelta(seconds=61))
        error = await refused(call(home, idle, "WhoAmI", local_pb2.WhoAmIRequest()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED

        busy = (await login(home, "bert")).session_token
        for _ in range(2):
            clock.advance(timedelta(seconds=50))
            await call(home, busy, "WhoAmI", local_pb2.WhoAmIRequest())
        clock.advance(timedelta(seconds=51))  # 151 s old, never idle for long
        error = await refused(call(home, busy, "WhoAmI", local_pb2.WhoAmIRequest()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await fed.stop_all()


async def test_failed_logins_lock_the_account_for_the_cool_down(tmp_short: Path) -> None:
    clock = OffsetClock()
    fed = Federation(tmp_short, [NL, DE], clock=clock)
    set_login(fed.homes[DE], max_failures=3, lockout_seconds=120.0)
    try:
        de = await fed.start(DE)
        home = de.config.home
        await add_user(de, "bert", "liaison_officer")
        await set_password(home, "bert")

        # A success starts the count again.
        for _ in range(2):
            await refused(login(home, "bert", "wrong password guess"))
        await login(home, "bert")
        for _ in range(2):
            error = await refused(login(home, "bert", "wrong password guess"))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        wrong = await refused(login(home, "bert", "wrong password guess"))
        # Locked: the right password is refused too, until the cool-down has passed, with the
        # answer a wrong password or an unknown name gets (it tells no one the account exists).
        error = await refused(login(home, "bert"))
        unknown = await refused(login(home, "nobody"))
        for answer in (wrong, error):
            assert (answer.code(), answer.details()) == (unknown.code(), unknown.details())
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        log = await de.access_store.entries()
        assert [e.detail for e in log if e.user == "bert"][:2] == [
            "locked out",
            "wrong password; account locked",
        ]
        clock.advance(timedelta(seconds=121))
        session = (await login(home, "bert")).session_token

        # Guessing the old password from a stolen session counts the same way.
        change = "SetPassword"
        for _ in range(2):
            guess = local_pb2.SetPasswordRequest(old_password="guess guess", new_password="x" * 12)
            error = await refused(call(home, session, change, guess))
            assert trailer(error, "accord-denied") == "OLD_PASSWORD"
        error = await refused(call(home, session, change, guess))
        assert trailer(error, "accord-denied") == "LOCKED_OUT"
        right = local_pb2.SetPasswordRequest(old_password=PASSWORD, new_password="y" * 12)
        error = await refused(call(home, session, change, right))
        assert trailer(error, "accord-denied") == "LOCKED_OUT"
        error = await refused(login(home, "bert"))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await fed.stop_all()


async def test_changing_a_password_from_a_session_needs_the_old_one(fed3: Federation) -> None:
    _, de, _ = await fed3.start_all()
    home = de.config.home
    await add_user(de, "bert", "liaison_officer")
    async with connect(home, user="bert") as c:
        error = await refused(c.api.SetPassword(local_pb2.SetPasswordRequest(new_password="short")))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "12 to 1024 characters" in (error.details() or "")
        error = await refused(
            c.api.SetPassword(local_pb2.SetPasswordRequest(new_password="bert" + " " * 10))
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    await set_password(home, "bert")

    first = (await login(home, "bert")).session_token
    second = (await login(home, "bert")).session_token
    new = "another long passphrase"
    error = await refused(
        call(home, first, "SetPassword", local_pb2.SetPasswordRequest(new_password=new))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert trailer(error, "accord-denied") == "OLD_PASSWORD"
    changed = await call(
        home,
        first,
        "SetPassword",
        local_pb2.SetPasswordRequest(old_password=PASSWORD, new_password=new),
    )
    assert changed.sessions_revoked == 1
    await call(home, first, "WhoAmI", local_pb2.WhoAmIRequest())  # the one that changed it
    error = await refused(call(home, second, "WhoAmI", local_pb2.WhoAmIRequest()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    await refused(login(home, "bert", PASSWORD))
    await login(home, "bert", new)


async def test_disabling_a_user_ends_their_sessions(fed3: Federation) -> None:
    _, de, _ = await fed3.start_all()
    home = de.config.home
    await add_user(de, "bert", "liaison_officer")
    await set_password(home, "bert")
    session = (await login(home, "bert")).session_token
    async with connect(home, user="admin") as c:
        await c.api.DisableUser(local_pb2.DisableUserRequest(name="bert"))
    error = await refused(call(home, session, "WhoAmI", local_pb2.WhoAmIRequest()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = await refused(login(home, "bert"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_watch_stream_ends_with_its_session(fed3: Federation) -> None:
    nl, de, _ = await fed3.start_all()
    await add_user(nl, "anna", "liaison_officer")
    await add_user(de, "bert", "liaison_officer")
    await set_password(de.config.home, "bert")
    session = (await login(de.config.home, "bert")).session_token
    async with (
        connect(de.config.home, token=session) as watcher,
        connect(nl.config.home, user="anna") as sender,
    ):
        feed = watcher.api.Watch(local_pb2.WatchRequest())
        await feed.wait_for_connection()

        async def watching() -> bool:
            return bool(de.watchers)

        await wait_for(watching)
        first = await sender.api.Send(local_pb2.SendRequest(content=liaison(to=[DE])))
        assert (await asyncio.wait_for(feed.read(), 10)).message_id == first.message_id
        await watcher.api.Logout(local_pb2.LogoutRequest())
        await sender.api.Send(local_pb2.SendRequest(content=liaison(to=[DE])))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(feed.read(), 10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    async def unwatched() -> bool:
        return not de.watchers

    await wait_for(unwatched)  # the ended stream no longer collects messages


async def test_inbox_filters(fed3: Federation) -> None:
    nl, de, fr = await fed3.start_all()
    await add_user(nl, "anna", "liaison_officer")
    await add_user(fr, "fabien", "liaison_officer")
    await add_user(de, "bert", "liaison_officer")
    async with connect(nl.config.home, user="anna") as c:
        request = (await c.api.Send(local_pb2.SendRequest(content=liaison(to=[DE])))).message_id
        published = await c.api.Send(local_pb2.SendRequest(content=incident(to=[DE, FR])))
    async with connect(fr.config.home, user="fabien") as c:
        content = liaison(to=[DE], purpose="counter-terrorism")
        content.correlation_id = request
        from_fr = (await c.api.Send(local_pb2.SendRequest(content=content))).message_id

    async def ids(home: Path, user: str, **filters: Any) -> list[str]:
        async with connect(home, user=user) as c:
            answer = await c.api.Inbox(local_pb2.InboxRequest(**filters))
        return [m.message_id for m in answer.messages]

    home = de.config.home
    everything = [from_fr, published.message_id, request]

    async def all_three() -> bool:
        return await ids(home, "bert") == everything

    await wait_for(all_three)
    assert await ids(home, "bert", type=pb.MESSAGE_TYPE_INCIDENT_PUBLISH) == [published.message_id]
    assert await ids(home, "bert", purpose="counter-terrorism") == [from_fr]
    assert await ids(home, "bert", peer=NL) == [published.message_id, request]
    assert await ids(home, "bert", correlation_id=request) == [from_fr, request]
    assert await ids(home, "bert", message_id=request) == [request]
    assert await ids(home, "bert", limit=1, before_message_id=from_fr) == [published.message_id]
    assert await ids(home, "bert", direction="out") == []
    # At the sender: what it sent, by recipient.
    assert await ids(nl.config.home, "anna", direction="out", peer=FR) == [published.message_id]
    assert await ids(nl.config.home, "anna", direction="all", peer=DE) == [
        published.message_id,
        request,
    ]
    for bad in ({"direction": "sideways"}, {"type": 999}):
        async with connect(home, user="bert") as c:
            error = await refused(c.api.Inbox(local_pb2.InboxRequest(**bad)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, bad


async def test_members_lists_the_directory(fed3: Federation) -> None:
    _, de, _ = await fed3.start_all()
    await add_user(de, "bert", "liaison_officer")
    async with connect(de.config.home, user="bert") as c:
        answer = await c.api.Members(local_pb2.MembersRequest())
    assert sorted(m.agency for m in answer.members) == sorted([NL, DE, FR])
    assert answer.directory_serial >= 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_failures": 0}, "login.max_failures: must be > 0"),
        ({"lockout_seconds": "inf"}, "login.lockout_seconds: at most"),
        ({"session_idle_seconds": 600.0, "session_max_seconds": 60.0}, "must be >= login"),
    ],
)
def test_login_settings_are_checked(tmp_short: Path, values: dict[str, Any], message: str) -> None:
    fed = Federation(tmp_short, [NL, DE])
    set_login(fed.homes[DE], **values)
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_mod.load(fed.homes[DE])


async def test_an_administrator_disabled_with_approval_loses_their_sessions_for_good(
    fed3: Federation,
) -> None:
    """Disabling an administrator waits for a second one; when it is approved, their sessions
    end as any disabled user's do, and enabling them again revives none."""
    _, de, _ = await fed3.start_all()
    home = de.config.home
    await second_admin(de)
    await add_user(de, "abe", "administrator")
    await set_password(home, "abe")
    session = (await login(home, "abe")).session_token
    me = local_pb2.WhoAmIRequest()
    assert (await call(home, session, "WhoAmI", me)).name == "abe"
    async with connect(home, user="admin") as a, connect(home, user="admin2") as b:
        await a.api.DisableUser(local_pb2.DisableUserRequest(name="abe"))
        assert (await call(home, session, "WhoAmI", me)).name == "abe"  # only asked so far
        await b.api.DecideUser(local_pb2.DecideUserRequest(name="abe", approve=True))
        assert (await refused(call(home, session, "WhoAmI", me))).code() == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        await a.api.EnableUser(local_pb2.EnableUserRequest(name="abe"))
        enabled = await b.api.DecideUser(local_pb2.DecideUserRequest(name="abe", approve=True))
    assert enabled.user.state == "active"
    assert (await refused(call(home, session, "WhoAmI", me))).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert (await call(home, (await login(home, "abe")).session_token, "WhoAmI", me)).name == "abe"
