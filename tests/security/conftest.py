import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_login_counters():
    """Login failure counters live in the (process-wide) cache: start and leave every test clean."""
    cache.clear()
    yield
    cache.clear()
