"""U+0000 cannot be stored by PostgreSQL: a NUL in the URL is bad input, never a 500."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/customers/a%00b",
        "/api/v1/customers/a%00b/activity",
        "/api/v1/flows?name=a%00b",
    ],
)
def test_it_refuses_a_nul_in_the_url_with_400(api, url):
    response = api.get(url)
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].startswith("The URL contains the NUL")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/api/v1/templates/a%00b", "/api/v1/segments/a%00b", "/api/v1/promo-pools/a%00b"]
)
def test_a_nul_in_a_slug_matches_no_url(api, url):
    response = api.get(url)
    assert response.status_code == 404
    assert "errors" in response.json()
