import pytest
from django.test import Client


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "start"), [("researcher", "/comparisons/"), ("annotator", "/rate/")])
def test_each_role_lands_on_its_own_start_page_after_login(request, who, start):
    user = request.getfixturevalue(who)
    client = Client()
    response = client.post("/login/", {"username": user.user.username, "password": user.password}, follow=True)
    assert response.redirect_chain[-1][0] == start
    assert response.status_code == 200


@pytest.mark.django_db
def test_the_front_door_asks_anonymous_visitors_to_log_in():
    response = Client().get("/")
    assert response.status_code == 302 and response.url.startswith("/login/")
