from __future__ import annotations

import kombu.pools
import pytest
import redis
from rest_framework.test import APIClient

from decodelab.config.celery import app as celery_app
from decodelab.users.models import Role
from decodelab.users.services import user_create
from tests.support.servers import redis_server


def point_celery_at(url: str) -> None:
    """Re-point the web side's Celery app at another broker, dropping pooled connections."""
    celery_app.conf.broker_url = url
    kombu.pools.reset()  # kombu keeps producer pools per broker URL, process-wide
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture(autouse=True)
def _fresh_model_catalogue():
    """Each test sees its own database's models, not a previous test's cached list."""
    from decodelab.catalog.selectors import offered_cache_clear

    offered_cache_clear()
    yield
    offered_cache_clear()


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as port:
        yield port


@pytest.fixture
def broker(redis_port, settings):
    """Point the web side's Celery app at a real, empty redis-server; yield a client to inspect it."""
    previous = celery_app.conf.broker_url
    point_celery_at(f"redis://127.0.0.1:{redis_port}/0")
    client = redis.Redis(port=redis_port)
    client.flushall()
    yield client
    point_celery_at(previous)


@pytest.fixture
def researcher(db):
    return user_create(username="ada", role=Role.RESEARCHER)


@pytest.fixture
def other_researcher(db):
    return user_create(username="grace", role=Role.RESEARCHER)


@pytest.fixture
def annotator(db):
    return user_create(username="ann", role=Role.ANNOTATOR)


@pytest.fixture
def api(researcher):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {researcher.token}")
    return client
