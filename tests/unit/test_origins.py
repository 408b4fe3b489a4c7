"""The Socket.IO origin check and the setting that feeds it."""

from __future__ import annotations

from exportd.config import Settings
from exportd.realtime.origins import normalise, origin_check


def test_origins_compare_without_case_default_ports_paths_or_trailing_slashes():
    assert normalise("HTTPS://Lab.Example:443/") == "https://lab.example"
    assert normalise("http://lab.example:80") == "http://lab.example"
    assert normalise("http://lab.example:8080/exportd/ui") == "http://lab.example:8080"
    assert normalise("https://[::1]:8443") == "https://[::1]:8443"
    assert normalise("null") == "null"


def test_the_host_the_request_reached_is_the_servers_own_origin_over_http_or_https():
    accepts = origin_check([])
    environ = {"HTTP_HOST": "exportd.lab:8000", "HTTP_X_FORWARDED_HOST": "evil.example"}
    assert accepts("http://exportd.lab:8000", environ)
    assert accepts("https://exportd.lab:8000", environ)
    assert not accepts("http://evil.example", environ)  # forwarded headers are the client's word
    assert not accepts("http://exportd.lab", environ)
    assert not accepts("null", environ)
    assert not accepts(None, environ)
    assert not accepts("http://exportd.lab:8000", {})


def test_listed_origins_are_accepted_from_any_host():
    accepts = origin_check(["https://lab.example/", "https://exportd.lab.example/sub/path", ""])
    assert accepts("https://lab.example", {"HTTP_HOST": "127.0.0.1:8000"})
    assert accepts("https://exportd.lab.example", {})
    assert not accepts("https://other.example", {"HTTP_HOST": "127.0.0.1:8000"})


def test_allowed_origins_are_read_comma_separated_or_as_json_and_the_old_name_still_counts(monkeypatch):
    monkeypatch.setenv("EXPORTD_ALLOWED_ORIGINS", "https://a.example, http://b.example:8080")
    monkeypatch.setenv("EXPORTD_CORS_ORIGINS", '["https://c.example"]')
    monkeypatch.setenv("EXPORTD_PUBLIC_URL", "https://exportd.example/base")
    settings = Settings()
    assert settings.allowed_origins == ["https://a.example", "http://b.example:8080"]
    assert settings.socket_origins == ["https://exportd.example/base", "https://a.example",
                                       "http://b.example:8080", "https://c.example"]


def test_with_nothing_configured_only_the_servers_own_origin_is_allowed(monkeypatch):
    for name in ("EXPORTD_ALLOWED_ORIGINS", "EXPORTD_CORS_ORIGINS", "EXPORTD_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().socket_origins == []
