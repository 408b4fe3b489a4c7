"""Socket.IO handshakes from browser origins: only the server's own and the configured ones (DESIGN §6).

A page on another site can make the user's browser open a socket with the user's
cookie; the ``Origin`` header is what tells such a handshake apart.
"""

from __future__ import annotations

import socketio

from tests.acceptance.support import running


async def connect(app, token: str, origin: str | None) -> socketio.AsyncClient:
    """A socket authenticated by the cookie alone, as a browser's would be, sending `origin` (none: no header)."""
    headers = {"Cookie": f"access_token={token}"}
    if origin is not None:
        headers["Origin"] = origin
    client = socketio.AsyncClient(reconnection=False)
    app.sockets.append(client)
    await client.connect(app.url, headers=headers, transports=["websocket"], wait_timeout=10)
    return client


async def refused(app, token: str, origin: str) -> bool:
    try:
        await connect(app, token, origin)
    except socketio.exceptions.ConnectionError:
        return True
    return False


FOREIGN = ("http://evil.example", "null", "http://127.0.0.1.evil.example")


async def test_a_handshake_from_a_foreign_or_null_origin_is_refused_even_with_a_valid_cookie(tmp_path):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        for origin in (*FOREIGN, app.url.replace("127.0.0.1", "localhost")):
            assert await refused(app, token, origin), f"{origin} was accepted"
        own = await connect(app, token, app.url)  # the same cookie from the right page works
        assert own.connected


async def test_a_long_polling_handshake_from_a_foreign_origin_is_refused_and_the_own_origin_answered(tmp_path):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        async with app.client(cookies={"access_token": token}) as http:
            def handshake(origin: str):
                return http.get("/socket.io/", params={"EIO": "4", "transport": "polling"},
                                headers={"Origin": origin})
            foreign = {origin: await handshake(origin) for origin in FOREIGN}
            own = await handshake(app.url)
    for origin, response in foreign.items():
        assert response.status_code == 400, (origin, response.status_code)
        assert "access-control-allow-origin" not in response.headers, origin
    assert own.status_code == 200 and own.text.startswith("0{")  # an Engine.IO open packet
    assert own.headers["access-control-allow-origin"] == app.url


async def test_a_handshake_from_the_servers_own_origin_is_accepted_and_answers_sync(tmp_path):
    async with running(tmp_path) as app:
        token, _, job_id, stored = await app.completed_export()
        port = app.url.rsplit(":", 1)[1]
        own = await connect(app, token, app.url)
        behind_tls = await connect(app, token, f"https://127.0.0.1:{port}")  # a TLS proxy in front
        ack = await own.call("export:sync", {"jobId": job_id, "afterSeq": 0}, timeout=10)
        assert own.connected and behind_tls.connected
    assert ack["success"] is True and ack["events"] == stored


async def test_configured_origins_and_the_public_urls_origin_are_accepted_and_no_others(tmp_path):
    async with running(tmp_path, allowed_origins=["https://lab.example", "http://viewer.lab.example:8080"],
                       public_url="https://exportd.lab.example/exports") as app:
        _, token = await app.user("ada@example.com")
        for origin in ("https://lab.example", "https://LAB.example:443", "http://viewer.lab.example:8080",
                       "https://exportd.lab.example"):
            assert (await connect(app, token, origin)).connected, origin
        for origin in ("http://lab.example", "https://viewer.lab.example:8080", "https://evil.lab.example",
                       "http://exportd.lab.example:8443"):
            assert await refused(app, token, origin), f"{origin} was accepted"


async def test_a_client_that_sends_no_origin_like_the_sdk_and_the_cli_still_connects(tmp_path):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        by_cookie = await connect(app, token, None)
        by_token = await app.socket(token)
        assert by_cookie.connected and by_token.client.connected
