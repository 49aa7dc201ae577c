"""Fixtures for identity source tests: the real upstream OpenID provider and the forged one."""

from __future__ import annotations

import pytest

from tests.providers.forged import ForgedUpstream
from tests.upstream.fixture import upstream  # noqa: F401  (session-scoped real upstream)


@pytest.fixture
def forged():
    server = ForgedUpstream()
    yield server
    server.close()
