from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.harness import Federation, short_tmp


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
