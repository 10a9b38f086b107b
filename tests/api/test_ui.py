"""The chat page and its assets, as a browser fetches them."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_root_serves_the_chat_page_with_a_strict_content_security_policy(
    client: TestClient,
) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    for element_id in ("api-key", "use-memory", "prompt", "conversation", "send"):
        assert f'id="{element_id}"' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_the_page_assets_are_served_with_their_types(client: TestClient) -> None:
    js = client.get("/static/chat.js")
    css = client.get("/static/chat.css")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "chat/stream" in js.text
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_only_the_page_assets_can_be_fetched(client: TestClient) -> None:
    for path in ("/static/index.html.bak", "/static/..%2Froutes%2Fui.py", "/static/app.py"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["type"] == "not_found_error"


def test_the_page_is_not_part_of_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and "/static/{name}" not in paths
