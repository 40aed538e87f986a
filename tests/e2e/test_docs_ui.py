"""/docs (Swagger UI) and /docs/redoc render in headless Chromium with every asset served by
the app itself: a page that asked any other host would be blank without internet."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.conftest import Server
from tests.e2e.browser import chromium


def test_swagger_ui_and_redoc_render_the_operations_from_the_server_alone(
    server: Server
) -> None:
    asked: list[str] = []
    with chromium() as browser:
        page = browser.new_page()
        # Requests that went out (one the page's policy blocks never leaves the browser).
        page.on("requestfinished", lambda request: asked.append(request.url))

        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=60_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/api/search_event/{location}" in [path.replace("\u200b", "") for path in paths]
        assert page.get_by_text("Create an event; every participant is emailed").count() == 1

        page.goto(f"{server.url}/docs/redoc")
        page.get_by_text("List events by starting time").first.wait_for(state="attached",
                                                                   timeout=60_000)
        assert page.get_by_text("Exchange a refresh token for a new pair").count() >= 1
    own = urlsplit(server.url).netloc
    elsewhere = [url for url in asked
                 if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != own]
    assert elsewhere == []
    assert any(url.endswith("swagger-ui-bundle.js") for url in asked)
    assert any(url.endswith("redoc.standalone.js") for url in asked)
