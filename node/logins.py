"""People's passwords and login sessions, for the gateway.

Decisions:
- Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory profile: 64 MiB, three
  passes), in a worker thread, at most two at a time so a burst of logins cannot exhaust memory
  or stall the node's event loop. A hash made with older parameters is redone at the next login.
- A session token is 256 random bits, shown once and stored as SHA-256. The local API accepts it
  wherever it accepts the user's own token, until it has gone unused for
  `login.session_idle_seconds`, is older than `login.session_max_seconds`, is revoked (Logout,
  a password change) or the user is disabled. Use is recorded at most once a minute (and at
  least ten times per idle period), so a busy console does not write on every call.
- `login.max_failures` wrong passwords in a row lock the account for `login.lockout_seconds`;
  while locked, even the right password is refused (and not checked). An unknown user, one
  without a password, and a locked account get the same answer as a wrong password, after the
  same hashing work: the answer does not tell which accounts exist.
- Disabling a user deletes their sessions: enabling them again revives none.
- A password is 12 to 1024 characters. A user sets their own: with their own token, or, from a
  session, with the old password too (a stolen session cannot take over the account). A change
  revokes the user's other sessions.
- The access log records logins (granted, refused, locked out), logouts and password changes,
  never a password; a name that is not a user is not logged (people type passwords there).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from node.clock import Clock
from node.config import LoginSection
from node.errors import InvalidRequest, PermissionDenied, Unauthenticated
from node.policy.access import User
from node.store.access import AccessStore
from node.store.logins import LoginStore, PasswordRow

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_HASHER = argon2.PasswordHasher()  # argon2id, RFC 9106 low-memory profile
_WRONG = (
    "wrong user name or password (an account is also locked for a while after too many "
    "failed logins in a row)"
)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def check_password(password: str, *, name: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(
            f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters; "
            "a passphrase of several words is easiest"
        )
    if not password.strip() or password.strip().lower() == name.lower():
        raise InvalidRequest("choose a password that is not blank and not your user name")


@functools.cache
def _dummy_hash() -> str:
    """Verified against when there is no hash to verify, so an unknown name costs the same."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def _verify_sync(hash_: str, password: str) -> bool:
    try:
        return _HASHER.verify(hash_, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    user: User
    expires_at: datetime
    idle_seconds: float


class Logins:
    def __init__(
        self, *, store: LoginStore, access: AccessStore, clock: Clock, settings: LoginSection
    ) -> None:
        self._store = store
        self._access = access
        self._clock = clock
        self._settings = settings
        self._idle = timedelta(seconds=settings.session_idle_seconds)
        self._touch_every = min(timedelta(minutes=1), self._idle / 10)
        self._hashing = asyncio.Semaphore(2)

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(_HASHER.hash, password)

    async def _verify(self, hash_: str | None, password: str) -> bool:
        async with self._hashing:
            if hash_ is None:
                await asyncio.to_thread(lambda: _verify_sync(_dummy_hash(), password))
                return False
            return await asyncio.to_thread(_verify_sync, hash_, password)

    async def _user(self, name: str) -> User | None:
        return next((u for u in await self._access.users() if u.name == name), None)

    async def _log(self, user: str, action: str, outcome: str, detail: str = "") -> None:
        await self._access.log(
            at=self._clock.now(), user=user, action=action, outcome=outcome, detail=detail
        )

    # ---- authentication (the local API's interceptor) ---------------------------------------

    async def authenticate(self, token: str) -> User | None:
        """The user a bearer token stands for: a user's own token, or a live session's."""
        return await self._authenticate(token, touch=True)

    async def still_valid(self, token: str) -> User | None:
        """The same, for an open stream's later items: not a use, so it extends nothing."""
        return await self._authenticate(token, touch=False)

    async def _authenticate(self, token: str, *, touch: bool) -> User | None:
        user = await self._access.user_by_token(token)
        if user is not None:
            return user
        return await self._session_user(_digest(token), touch=touch)

    async def _session_user(self, digest: bytes, *, touch: bool) -> User | None:
        row = await self._store.session(digest)
        if row is None:
            return None
        now = self._clock.now()
        if now >= row.expires_at or now >= row.last_used_at + self._idle:
            return None
        if touch and now - row.last_used_at >= self._touch_every:
            await self._store.touch_session(digest=digest, now=now)
        user = await self._user(row.user_name)
        return None if user is None or user.disabled else user

    async def is_session(self, token: str) -> bool:
        return await self._store.session(_digest(token)) is not None

    # ---- login, logout ----------------------------------------------------------------------

    async def _check(
        self,
        name: str,
        row: PasswordRow,
        password: str,
        *,
        action: str,
        wrong: Exception,
        locked: Callable[[datetime], Exception] | None = None,
    ) -> None:
        """The password check of a login, or of a password change from a session: refused
        while locked, and every wrong password counts towards the lockout, so neither can be
        used to guess. `locked`: the error a locked account gets (a login's says no more than
        a wrong password's)."""
        locked = locked or _locked
        now = self._clock.now()
        if row.locked_until is not None and now < row.locked_until:
            await self._verify(None, password)  # the time an unknown name's answer takes
            await self._log(name, action, "refused", "locked out")
            raise locked(row.locked_until)
        if await self._verify(row.hash, password):
            if row.failures or row.locked_until is not None:
                await self._store.record_success(name=name)
            return
        lock_until = now + timedelta(seconds=self._settings.lockout_seconds)
        after = await self._store.record_failure(
            name=name, max_failures=self._settings.max_failures, lock_until=lock_until
        )
        now_locked = after is not None and after.locked_until == lock_until
        detail = "wrong password" + ("; account locked" if now_locked else "")
        await self._log(name, action, "refused", detail)
        raise locked(lock_until) if now_locked else wrong

    async def login(self, *, name: str, password: str) -> Session:
        now = self._clock.now()
        row = await self._store.password(name) if name else None
        if row is None:
            await self._verify(None, password)
            raise Unauthenticated(_WRONG)
        # A locked account answers as an unknown name or a wrong password do, so the answer
        # does not tell which accounts exist (the access log says it was locked).
        await self._check(
            name,
            row,
            password,
            action="login",
            wrong=Unauthenticated(_WRONG),
            locked=lambda _until: Unauthenticated(_WRONG),
        )
        user = await self._user(name)
        if user is None or user.disabled:
            raise Unauthenticated(_WRONG)
        if _HASHER.check_needs_rehash(row.hash):
            await self._store.rehash(name=name, hash=await self._hash(password))
        token = secrets.token_urlsafe(32)
        expires_at = now + timedelta(seconds=self._settings.session_max_seconds)
        await self._store.create_session(
            digest=_digest(token), name=name, now=now, expires_at=expires_at
        )
        await self._log(name, "login", "granted")
        return Session(token, user, expires_at, self._settings.session_idle_seconds)

    async def logout(self, user: User, *, token: str) -> None:
        digest = _digest(token)
        if await self._store.session(digest) is None:
            raise InvalidRequest(
                "logout ends a login session; this call was made with a user token, which "
                "only an administrator can revoke (by disabling the user)"
            )
        await self._store.revoke_session(digest=digest, now=self._clock.now())
        await self._log(user.name, "logout", "granted")

    # ---- passwords --------------------------------------------------------------------------

    async def set_password(self, user: User, *, token: str, old: str, new: str) -> int:
        """Set the caller's password; returns how many of their other sessions were revoked."""
        session = await self.is_session(token)
        if session:
            wrong = PermissionDenied(
                "OLD_PASSWORD", "changing the password from a session needs the old one"
            )
            row = await self._store.password(user.name)
            if row is None:
                raise wrong
            await self._check(user.name, row, old, action="set-password", wrong=wrong)
        check_password(new, name=user.name)
        before = await self._store.live_sessions(user.name)
        await self._store.set_password(
            name=user.name,
            hash=await self._hash(new),
            now=self._clock.now(),
            keep_session=_digest(token) if session else None,
        )
        await self._log(user.name, "set-password", "granted")
        return before - (1 if session else 0)


def _locked(until: datetime) -> PermissionDenied:
    return PermissionDenied(
        "LOCKED_OUT",
        f"too many failed logins: the account is locked until {until:%Y-%m-%d %H:%M:%S} UTC",
    )
