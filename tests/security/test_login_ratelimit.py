"""Failed logins are rate-limited per (username, address) and per address: 429 with Retry-After."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from decodelab.users.models import Role
from decodelab.users.services import user_create

PASSWORD = "correct horse battery staple"


@pytest.fixture
def ada(db):
    return user_create(username="ada", role=Role.RESEARCHER, password=PASSWORD).user


def login(client: Client, username: str, password: str, address: str = "10.0.0.1", url: str = "/login/"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_five_failures_then_429_with_retry_after_even_for_the_right_password(ada, client):
    for _ in range(5):
        response = login(client, "ada", "wrong")
        assert response.status_code == 200  # the form again, with its error
        assert "_auth_user_id" not in client.session
    blocked = login(client, "ada", PASSWORD)
    assert blocked.status_code == 429
    assert 290 <= int(blocked["Retry-After"]) <= 300
    body = blocked.content.decode()
    assert "Too many failed login attempts" in body and "Try again in" in body
    assert "_auth_user_id" not in client.session  # the password was not even checked
    # Case and surrounding spaces do not make a fresh counter.
    assert login(client, " ADA ", PASSWORD).status_code == 429


def test_the_counter_is_per_username_and_address(ada, client):
    user_create(username="grace", role=Role.RESEARCHER, password=PASSWORD)
    for _ in range(5):
        login(client, "ada", "wrong")
    assert login(client, "ada", PASSWORD).status_code == 429
    assert login(client, "grace", PASSWORD).status_code == 302  # another username from the same address
    other = Client()
    assert login(other, "ada", PASSWORD, address="10.9.9.9").status_code == 302  # another address


def test_a_successful_login_clears_the_counter(ada, client):
    for _ in range(4):
        login(client, "ada", "wrong")
    assert login(client, "ada", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        assert login(client, "ada", "wrong").status_code == 200
    assert login(client, "ada", PASSWORD).status_code == 302


def test_many_usernames_from_one_address_hit_the_per_address_limit(ada, client, settings):
    settings.DECODELAB_LOGIN_MAX_FAILURES_PER_IP = 3
    for name in ("u1", "u2", "u3"):
        assert login(client, name, "wrong").status_code == 200
    assert login(client, "ada", PASSWORD).status_code == 429
    assert login(Client(), "ada", PASSWORD, address="10.0.0.2").status_code == 302


def test_the_window_expires(ada, client, settings):
    settings.DECODELAB_LOGIN_MAX_FAILURES = 2
    settings.DECODELAB_LOGIN_WINDOW_S = 1
    login(client, "ada", "wrong")
    login(client, "ada", "wrong")
    blocked = login(client, "ada", PASSWORD)
    assert blocked.status_code == 429 and blocked["Retry-After"] == "1"
    time.sleep(1.1)
    assert login(client, "ada", PASSWORD).status_code == 302


def test_requests_without_a_password_check_are_not_counted(ada, client):
    for _ in range(10):
        assert client.get("/login/").status_code == 200
        assert client.post("/login/", {"username": "ada"}, REMOTE_ADDR="10.0.0.1").status_code == 200  # no password
    assert login(client, "ada", PASSWORD).status_code == 302


def test_the_admin_login_is_limited_too(ada, client):
    admin = user_create(username="root", role=Role.RESEARCHER, password=PASSWORD).user
    admin.is_staff = admin.is_superuser = True
    admin.save()
    for _ in range(5):
        assert login(client, "root", "wrong", url="/admin/login/").status_code == 200
    assert login(client, "root", PASSWORD, url="/admin/login/").status_code == 429
    # A logged-in non-staff user cannot guess staff passwords on the admin login without limit.
    client.force_login(ada)
    for _ in range(5):
        assert login(client, "root2", "wrong", url="/admin/login/").status_code == 200
    assert login(client, "root2", "wrong", url="/admin/login/").status_code == 429


def test_the_login_form_still_requires_its_csrf_token(ada):
    strict = Client(enforce_csrf_checks=True)
    assert login(strict, "ada", PASSWORD).status_code == 403
