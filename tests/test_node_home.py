"""A node's home: `accord node init` is all or nothing, a started node never begins afresh over a
lost database, never overwrites a token file, and keeps its secrets 0600."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from node import home as home_mod
from node.errors import ConfigError
from tests.harness import Federation, approved_user
from tests.test_cli_args import assert_one_line_error, run

NL = "NL-POL"


@pytest.fixture
def fed_dir(tmp_short: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    fed = tmp_short / "fed"
    assert run(["certs", "init-federation", "--dir", str(fed)], capsys).code == 0
    issue = ["certs", "issue", "--dir", str(fed), "--agency", NL, "--endpoint", "127.0.0.1:7443"]
    assert run(issue, capsys).code == 0
    return fed


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_failed_init_leaves_nothing_and_the_retry_succeeds(
    fed_dir: Path, tmp_short: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_short / "nl"
    init = ["node", "init", "--home", str(home), "--agency", NL, "--federation", str(fed_dir)]
    assert_one_line_error(run([*init, "--listen", "nonsense"], capsys), "--listen", "HOST:PORT")
    assert not home.exists() and leftovers(tmp_short) == []

    result = run(init, capsys)  # the retry, with --listen from the directory's entry
    assert result.code == 0, result
    assert 'listen = "127.0.0.1:7443"' in (home / "config.toml").read_text()
    assert leftovers(tmp_short) == []
    with sqlite3.connect(home / "accord.db") as db:
        users = db.execute("SELECT name, role FROM users").fetchall()
    assert users == [("admin", "administrator")], "init creates the bootstrap administrator"
    assert len((home / "tokens" / "admin").read_text()) >= 40
    for name in ("accord.db", "master.key", "node.key", "config.toml", "tokens/admin"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    assert_one_line_error(run(init, capsys), "already holds a node", "refusing to overwrite")


def test_init_cleans_up_after_a_failure_half_way(
    fed_dir: Path, tmp_short: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after files were written (here: making the database) removes them all."""

    def no_database(path: Path, keys: object, statements: object = ()) -> None:
        path.write_bytes(b"partial")
        raise ConfigError("disk trouble")

    monkeypatch.setattr(home_mod, "create_database", no_database)
    home = tmp_short / "nl"
    with pytest.raises(ConfigError, match="disk trouble"):
        home_mod.init_home(
            home,
            agency=NL,
            federation="accord.test",
            listen="127.0.0.1:7443",
            issued=fed_dir / "issued" / NL,
            directory=fed_dir / "directory.json",
            crl=fed_dir / "crl.pem",
        )
    assert not home.exists() and leftovers(tmp_short) == []


def test_init_refuses_a_directory_with_something_in_it(
    fed_dir: Path, tmp_short: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_short / "busy"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    init = ["node", "init", "--home", str(home), "--agency", NL, "--federation", str(fed_dir)]
    assert_one_line_error(run(init, capsys), "exists and is not an empty directory")
    assert [p.name for p in home.iterdir()] == ["notes.txt"]
    (home / "notes.txt").unlink()
    assert run(init, capsys).code == 0, "an empty directory is fine"


async def test_a_missing_or_empty_database_is_refused_and_the_token_kept(
    tmp_short: Path,
) -> None:
    fed = Federation(tmp_short, [NL, "DE-BKA"])
    home = fed.homes[NL]
    token = (home / "tokens" / "admin").read_text()
    db = home / "accord.db"
    db.write_bytes(b"")
    with pytest.raises(ConfigError, match="home initialised but database empty"):
        await fed.start(NL)
    assert db.stat().st_size == 0, "no fresh database over the lost one"
    db.unlink()
    with pytest.raises(ConfigError, match="home initialised but database missing"):
        await fed.start(NL)
    assert not db.exists()
    assert (home / "tokens" / "admin").read_text() == token
    # A database file without the schema is not this node's either.
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ConfigError, match="has no schema"):
        await fed.start(NL)


async def test_secrets_left_readable_are_made_0600_at_start(tmp_short: Path) -> None:
    fed = Federation(tmp_short, [NL, "DE-BKA"])
    home = fed.homes[NL]
    names = ("node.key", "master.key", "accord.db", "tokens/admin")
    for name in names:
        (home / name).chmod(0o666)
    (home / "tokens").chmod(0o777)
    try:
        await fed.start(NL)
        for name in names:
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
        assert stat.S_IMODE((home / "tokens").stat().st_mode) == 0o700
    finally:
        await fed.stop_all()


async def test_users_enrol_never_overwrites_a_token_file(tmp_short: Path) -> None:
    from tests.test_cli import accord, assert_usage_error

    fed = Federation(tmp_short, [NL, "DE-BKA"])
    try:
        node = await fed.start(NL)
        code = await approved_user(node, "bob", "liaison_officer", [])
        home = fed.homes[NL]
        kept = home / "tokens" / "bob"
        kept.write_text("someone else's token")
        run_ = await accord("users", "enrol", "bob", "--code", code, "--save", "--home", home)
        assert_usage_error(run_, f"{kept} exists; a token file is never overwritten")
        assert kept.read_text() == "someone else's token"
        # Refused before the code was spent: bob can still redeem it.
        _, token = await node.operations.enrol(name="bob", code=code)
        assert token != "someone else's token"
    finally:
        await fed.stop_all()


async def test_a_token_that_cannot_be_saved_is_shown_not_lost(tmp_short: Path) -> None:
    """The code is spent once the node answers: if the token file cannot be written, the
    token is printed (stdout) with the one-line error, and it works."""
    from tests.test_cli import accord, assert_usage_error

    fed = Federation(tmp_short, [NL, "DE-BKA"])
    try:
        node = await fed.start(NL)
        code = await approved_user(node, "bob", "liaison_officer", [])
        home = fed.homes[NL]
        (home / "tokens").rename(home / "tokens.kept")
        (home / "tokens").write_text("a file where the folder belongs")
        run_ = await accord("users", "enrol", "bob", "--code", code, "--save", "--home", home)
        assert_usage_error(run_, "could not save the token to")
        token = run_.out.strip()
        user = await node.access_store.user_by_token(token)
        assert user is not None and user.name == "bob"
    finally:
        await fed.stop_all()
