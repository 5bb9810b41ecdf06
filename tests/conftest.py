from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import harness
from tests.harness import Federation, Templates, short_tmp


@pytest.fixture(scope="session", autouse=True)
def federation_templates() -> Iterator[Templates]:
    """One throwaway PKI (CA, node keys and certificates, node homes) per set of agencies for
    the whole run; each test's Federation works on a copy of its own."""
    root = short_tmp()
    harness.TEMPLATES = Templates(root)
    try:
        yield harness.TEMPLATES
    finally:
        harness.TEMPLATES = None
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tmp_short() -> Iterator[Path]:
    path = short_tmp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def fed3(tmp_short: Path) -> AsyncIterator[Federation]:
    federation = Federation(tmp_short, ["NL-POL", "DE-BKA", "FR-PN"])
    yield federation
    await federation.stop_all()


@pytest.fixture
async def fed2(tmp_short: Path) -> AsyncIterator[Federation]:
    federation = Federation(tmp_short, ["NL-POL", "DE-BKA"])
    yield federation
    await federation.stop_all()
