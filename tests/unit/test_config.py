"""Settings: environment variables, defaults that live in the data folder, the kept secret."""

from __future__ import annotations

import stat

from exportd.config import Settings


def test_settings_come_from_exportd_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPORTD_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("EXPORTD_MAX_ACTIVE_EXPORTS_PER_USER", "3")
    monkeypatch.setenv("EXPORTD_WORKER_CONCURRENCY", "5")
    monkeypatch.setenv("EXPORTD_JOB_TIMEOUT_SECONDS", "60")
    monkeypatch.setenv("EXPORTD_RETENTION_SECONDS", "120")
    monkeypatch.setenv("EXPORTD_SECRET_KEY", "from-the-environment")
    settings = Settings().resolved()
    assert settings.data_dir == (tmp_path / "d").resolve()
    assert (settings.max_active_exports_per_user, settings.worker_concurrency) == (3, 5)
    assert (settings.job_timeout_seconds, settings.retention_seconds) == (60, 120)
    assert settings.secret_key == "from-the-environment"


def test_the_defaults_match_the_contract(monkeypatch):
    for name in ("EXPORTD_MAX_ACTIVE_EXPORTS_PER_USER", "EXPORTD_JOB_TIMEOUT_SECONDS", "EXPORTD_RETENTION_SECONDS",
                 "EXPORTD_DOWNLOAD_TOKEN_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.max_active_exports_per_user == 1
    assert settings.job_timeout_seconds == 1800
    assert settings.retention_seconds == 86400
    assert settings.download_token_seconds == 600


def test_with_no_settings_the_store_is_sqlite_in_the_data_folder_and_the_secret_is_kept_private(
        monkeypatch, tmp_path):
    monkeypatch.delenv("EXPORTD_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXPORTD_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXPORTD_DATA_DIR", raising=False)

    first = Settings().resolved()
    second = Settings().resolved()

    assert first.data_dir == (tmp_path / "exportd-data").resolve()
    assert first.database_url == f"sqlite+aiosqlite:///{first.data_dir / 'exportd.db'}"
    key_file = first.data_dir / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.secret_key == second.secret_key == key_file.read_text().strip()
    assert len(first.secret_key) >= 32


async def test_a_started_runtime_moves_its_startup_heap_out_of_the_collectors_way(tmp_path):
    import gc

    from exportd.runtime import Runtime
    from exportd.testing import test_settings

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    runtime = Runtime(test_settings(tmp_path / "data", gc_freeze_on_start=True))
    await runtime.start()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        await runtime.stop()
        gc.unfreeze()


def test_the_storage_folder_is_inside_the_data_folder_unless_exportd_storage_dir_names_one(monkeypatch, tmp_path):
    monkeypatch.delenv("EXPORTD_STORAGE_DIR", raising=False)
    default = Settings(data_dir=tmp_path / "d").resolved()
    assert default.storage_dir == (tmp_path / "d" / "storage").resolve()  # where uploads always were
    assert default.exports_dir == default.storage_dir / "exports"

    monkeypatch.setenv("EXPORTD_STORAGE_DIR", str(tmp_path / "shared"))
    shared = Settings(data_dir=tmp_path / "d").resolved()
    assert shared.storage_dir == (tmp_path / "shared").resolve()
    assert shared.attempt_dir("j", 2) == (tmp_path / "shared" / "exports" / "j.2").resolve()
