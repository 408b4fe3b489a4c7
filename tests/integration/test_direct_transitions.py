"""A worker's claim, read, progress and completion through ``Store`` (on PostgreSQL one statement each, see
store/direct.py).

On both stores: each transition keeps its guards (status, and the attempt for
the progress and the completion), writes one event row under the job's new
``seq``, stores the payload its model in ``domain/events.py`` gives for the row,
and hands that event to the process's listeners after the commit. On PostgreSQL
the payloads are built in SQL, so these tests are what holds them to the models;
and a progress event is announced with its COMMIT, never before it, and never
when its transaction rolls back.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from exportd.domain import events as ev
from exportd.domain.filenames import export_file_names
from exportd.domain.errors import ExportNotCancellable, ProjectNotFound, Unauthorized
from exportd.domain.jobs import CancelReason
from exportd.domain.requests import Credentials, ExportRequest
from exportd.store.announcing import AnnouncingConnection
from exportd.store.notifications import EVENTS_CHANNEL, asyncpg_dsn
from exportd.store.repository import download_path, iso
from exportd.store.uow import Store
from tests.conftest import eventually, make_world, until_another_waits_for_a_lock, users_row_held

STARTED = datetime(2026, 11, 30, 14, 32, tzinfo=UTC)


async def new_job(world, options: dict | None = None):
    return await world.runtime.store.apply(lambda repo: repo.create_job(
        project_id=world.project_id, user_id=world.user_id,
        options=ExportRequest().options.to_json() if options is None else options, project_name="Spheroids"))


def base(job) -> dict:
    return {"job_id": job.id, "project_id": job.project_id, "user_id": job.user_id, "seq": job.seq,
            "status": job.status, "timestamp": iso(job.updated_at)}


async def complete(world, job, attempt: int | None = None, *, names=None, size: int = 123,
                   warnings=("image 2 has no polygons",), seconds: float = 0.123456):
    return await world.runtime.store.complete(
        job.id, job.attempt if attempt is None else attempt, user_id=job.user_id,
        publish=lambda: f"exports/{job.id}.{job.attempt}/x.zip",
        names=names or export_file_names("Spheroids", STARTED, job.id), export_size=size,
        warnings=list(warnings), processing_time=seconds)


async def report(store, job, attempt: int | None = None, *, progress: float = 33.33, stage: str = "annotations",
                 current: int = 7, total: int = 21, message: str = "COCO: image_007.png",
                 item: str | None = "image_007.png", eta: float | None = 12.5):
    return await store.progress(job.id, job.attempt if attempt is None else attempt, progress=progress, stage=stage,
                                current=current, total=total, message=message, item=item, eta_seconds=eta,
                                lease_seconds=60)


@pytest.fixture
async def published(world):
    """Every event the store handed to this process's listeners, in order."""
    await world.runtime.engine.stop()  # these tests make the transitions themselves
    heard: list[ev.EventRecord] = []
    world.runtime.store.subscribe(heard.extend)
    return heard


async def test_a_claim_and_a_completion_store_the_payloads_their_models_give_and_publish_them_after_commit(
        world, published):
    store = world.runtime.store
    earlier = await store.claim((await new_job(world)).id, lease_seconds=60)
    assert earlier.attempt == 1 and earlier.status == "processing" and earlier.progress == 0
    assert await complete(world, earlier, seconds=2.5) is not None  # the project's last processing time

    job = await new_job(world)
    claimed = await store.claim(job.id, lease_seconds=60)
    started = ev.Started(**base(claimed), started_at=iso(claimed.updated_at), estimated_duration=2.5, attempt=1)
    assert (claimed.seq, claimed.started_at, claimed.lease_expires_at > claimed.updated_at) == (
        2, claimed.updated_at, True)

    done = await complete(world, claimed, warnings=["image 2 has no polygons"], seconds=0.123456)
    plain = export_file_names("Spheroids", STARTED, job.id)[0]
    assert plain == export_file_names("Spheroids", STARTED, earlier.id)[0]  # the earlier export has it
    completed = ev.Completed(
        **base(done), completed_at=iso(done.updated_at), processing_time=0.123456, export_size=123,
        file_name=export_file_names("Spheroids", STARTED, job.id)[1], warnings=["image 2 has no polygons"],
        download_url=store.public_url + download_path(job.project_id, job.id))
    assert (done.status, done.seq, done.progress, done.lease_expires_at, done.stage, done.message) == (
        "completed", 3, 100, None, "compression", "Export ready")
    assert (done.file_name, done.file_path, done.export_size, done.warnings, done.completed_at) == (
        completed.file_name, f"exports/{job.id}.1/x.zip", 123, ["image 2 has no polygons"], done.updated_at)

    stored = await world.stored_events(job.id)
    assert [event["type"] for event in stored] == ["export:queued", "export:started", "export:completed"]
    assert stored[1:] == [started.to_json(), completed.to_json()]
    assert list(stored[2]) == list(completed.to_json())  # the fields in the model's order too
    mine = [(record.seq, record.type, record.payload, record.rooms) for record in published
            if record.job_id == job.id and record.seq > 1]
    assert mine == [(2, "export:started", stored[1], (world.user_id,)),
                    (3, "export:completed", stored[2], (world.user_id,))]


async def test_a_start_stores_the_queued_payload_its_model_gives_and_counts_the_jobs_ahead(tmp_path):
    world = await make_world(tmp_path, images=0, max_active_exports_per_user=5)
    try:
        await world.runtime.engine.stop()  # both stay pending
        heard: list[ev.EventRecord] = []
        world.runtime.store.subscribe(heard.extend)
        services = world.runtime.services
        first, _ = await services.start_export(world.user_id, world.project_id, ExportRequest())
        named = ExportRequest.model_validate({"projectName": "Renamed"})
        second, created = await services.start_export(world.user_id, world.project_id, named)

        assert created and (second.status, second.seq, second.attempt, second.progress, second.warnings) == (
            "pending", 1, 0, 0, [])
        assert (first.project_name, second.project_name) == ("Spheroids", "Renamed")
        assert second.options == named.options.to_json() and second.created_at == second.updated_at
        queued = ev.Queued(**base(second), queued_at=iso(second.created_at), position=1, attempt=0)
        stored = await world.stored_events(second.id)
        assert stored == [queued.to_json()] and list(stored[0]) == list(queued.to_json())
        assert [(r.job_id, r.seq, r.payload) for r in heard] == [
            (first.id, 1, (await world.stored_events(first.id))[0]), (second.id, 1, stored[0])]
    finally:
        await world.runtime.stop()


async def test_a_first_claim_has_no_estimate_and_an_export_without_warnings_says_so(world, published):
    claimed = await world.runtime.store.claim((await new_job(world)).id, lease_seconds=60)
    done = await complete(world, claimed, warnings=(), seconds=1.0)
    stored = await world.stored_events(claimed.id)

    assert stored[1]["estimatedDuration"] is None
    assert (stored[2]["warnings"], stored[2]["processingTime"]) == ([], 1.0)
    assert done.file_name == export_file_names("Spheroids", STARTED, claimed.id)[0]


async def test_a_claim_of_a_job_that_is_no_longer_pending_changes_nothing(world, published):
    store = world.runtime.store
    cancelled, taken = await new_job(world), await new_job(world)
    await store.apply(lambda repo: repo.cancel(cancelled.id, reason=CancelReason.USER_CANCELLED,
                                               cancelled_by=world.user_id))
    assert await store.claim(taken.id, lease_seconds=60) is not None
    published.clear()

    assert await store.claim(cancelled.id, lease_seconds=60) is None
    assert await store.claim(taken.id, lease_seconds=60) is None  # a duplicate delivery of the task
    assert [e["type"] for e in await world.stored_events(cancelled.id)] == ["export:queued", "export:cancelled"]
    assert [e["type"] for e in await world.stored_events(taken.id)] == ["export:queued", "export:started"]
    assert (await world.job(taken.id)).attempt == 1
    assert published == []


async def test_a_completion_by_another_attempt_or_after_a_cancel_changes_nothing(world, published):
    store = world.runtime.store
    claimed = await store.claim((await new_job(world)).id, lease_seconds=60)
    published.clear()

    assert await complete(world, claimed, attempt=claimed.attempt + 1) is None  # fenced: not this attempt's
    assert await complete(world, claimed, attempt=claimed.attempt - 1) is None
    await store.apply(lambda repo: repo.cancel(claimed.id, reason=CancelReason.USER_CANCELLED,
                                               cancelled_by=world.user_id))
    assert await complete(world, claimed) is None  # its own attempt, but the job is cancelled

    job = await world.job(claimed.id)
    assert (job.status, job.file_name, job.file_path, job.completed_at) == ("cancelled", None, None, None)
    assert [e["type"] for e in await world.stored_events(claimed.id)] == [
        "export:queued", "export:started", "export:cancelled"]
    assert [record.type for record in published] == ["export:cancelled"]


async def test_a_progress_report_stores_the_payload_its_model_gives_renews_the_lease_and_is_published(
        world, published):
    store = world.runtime.store
    claimed = await store.claim((await new_job(world)).id, lease_seconds=60)
    published.clear()

    quoted = "image 7: O'Brien's \\ \"žluťoučký\" {$$}"  # quotes, a backslash, Czech
    first = await report(store, claimed, progress=33.33, message=quoted)
    late = await report(store, claimed, progress=95.5, stage="compression", current=0, total=1,
                        message="Compressing", item=None, eta=None)  # from 90 %: "downloading"
    again = await report(store, claimed, progress=95.5, stage="compression", current=1, total=1,
                         message="Compressing", item="", eta=0.0)  # the same figure again is no fall
    expected = [
        ev.Progress(**base(first), progress=33.33, stage="annotations", message=quoted, eta_seconds=12.5,
                    stage_progress=ev.StageProgress(current=7, total=21, current_item="image_007.png"),
                    phase="processing"),
        ev.Progress(**base(late), progress=95.5, stage="compression", message="Compressing", eta_seconds=None,
                    stage_progress=ev.StageProgress(current=0, total=1, current_item=None), phase="downloading"),
        ev.Progress(**base(again), progress=95.5, stage="compression", message="Compressing", eta_seconds=0.0,
                    stage_progress=ev.StageProgress(current=1, total=1, current_item=None), phase="downloading"),
    ]
    rows = [first, late, again]
    assert [(row.seq, row.status, row.attempt, row.progress, row.stage, row.message) for row in rows] == [
        (3, "processing", 1, 33.33, "annotations", quoted), (4, "processing", 1, 95.5, "compression", "Compressing"),
        (5, "processing", 1, 95.5, "compression", "Compressing")]
    assert [row.lease_expires_at - row.updated_at for row in rows] == [timedelta(seconds=60)] * 3
    assert (first.started_at, first.updated_at > claimed.updated_at) == (claimed.started_at, True)

    stored = (await world.stored_events(claimed.id))[2:]
    assert stored == [model.to_json() for model in expected]
    for payload, model in zip(stored, expected, strict=True):  # the fields in the model's order too
        assert list(payload) == list(model.to_json())
        assert list(payload["stageProgress"]) == list(model.to_json()["stageProgress"])
    assert [(record.job_id, record.seq, record.type, record.payload, record.rooms) for record in published] == [
        (claimed.id, payload["seq"], "export:progress", payload, (world.user_id,)) for payload in stored]


async def test_a_progress_report_of_another_attempt_of_a_job_not_processing_or_falling_changes_nothing(
        world, published):
    store = world.runtime.store
    pending = await new_job(world)
    assert await report(store, pending, attempt=0) is None  # never claimed
    claimed = await store.claim((await new_job(world)).id, lease_seconds=60)
    held = await report(store, claimed, progress=50)
    published.clear()

    assert await report(store, claimed, attempt=claimed.attempt + 1, progress=60) is None  # fenced
    assert await report(store, claimed, attempt=claimed.attempt - 1, progress=60) is None
    assert await report(store, claimed, progress=49.99) is None  # progress never falls
    job = await world.job(claimed.id)
    assert (job.seq, job.progress, job.updated_at, job.lease_expires_at) == (
        held.seq, 50, held.updated_at, held.lease_expires_at)  # the lease was not renewed either
    await store.apply(lambda repo: repo.cancel(claimed.id, reason=CancelReason.USER_CANCELLED,
                                               cancelled_by=world.user_id))
    assert await report(store, claimed, progress=60) is None  # its own attempt, but the job is cancelled

    assert [e["type"] for e in await world.stored_events(pending.id)] == ["export:queued"]
    assert [(e["type"], e.get("progress")) for e in await world.stored_events(claimed.id)] == [
        ("export:queued", None), ("export:started", None), ("export:progress", 50), ("export:cancelled", 50)]
    assert [record.type for record in published] == ["export:cancelled"]


@pytest.fixture
async def announcing(world, backend, published):
    """A store whose COMMITs announce progress, as a worker's does; the notifications a plain LISTEN
    connection hears, decoded (that connection also says things on the channel); and the events the
    store handed to its own listeners."""
    if backend != "postgres":
        pytest.skip("NOTIFY is PostgreSQL's")
    store = Store(world.runtime.settings.database_url, public_url=world.runtime.store.public_url)
    heard: list[dict] = []
    mine: list[ev.EventRecord] = []
    store.subscribe(mine.extend)
    probe = await asyncpg.connect(asyncpg_dsn(world.runtime.settings.database_url))
    await probe.add_listener(EVENTS_CHANNEL, lambda *args: heard.append(json.loads(args[-1])))
    try:
        yield store, heard, probe, mine
    finally:
        await probe.close()
        await store.close()


@pytest.fixture
def commit_held(monkeypatch):
    """(held, release): each COMMIT of an announcing store waits, its statements done, until `release` is set;
    `held` is set when one waits."""
    held, release = asyncio.Event(), asyncio.Event()
    execute = AnnouncingConnection.execute

    async def waiting_commit(connection, query, *args, timeout=None):
        if query == "COMMIT;" and not release.is_set():
            held.set()
            await release.wait()
        return await execute(connection, query, *args, timeout=timeout)

    monkeypatch.setattr(AnnouncingConnection, "execute", waiting_commit)
    return held, release


async def said_and_heard(probe, heard: list[dict], word: str) -> None:
    """Say `word` on the events channel and wait until it is heard: what was announced before it was heard too."""
    await probe.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, json.dumps({"said": word}))
    await eventually(lambda: {"said": word} in heard, message=f"{word!r} to be heard")


async def test_a_progress_report_is_announced_with_its_commit_and_not_before(world, announcing, commit_held):
    store, heard, probe, mine = announcing
    held, release = commit_held
    claimed = await world.runtime.store.claim((await new_job(world)).id, lease_seconds=60)
    writing = asyncio.create_task(report(store, claimed))
    await asyncio.wait_for(held.wait(), 10)  # its statement ran; its COMMIT waits

    await said_and_heard(probe, heard, "before the commit")
    assert [note for note in heard if note.get("jobId") == claimed.id][2:] == []  # its queued and started only
    assert (await world.job(claimed.id)).seq == claimed.seq and mine == []  # not committed: nobody sees it
    release.set()
    row = await asyncio.wait_for(writing, 10)
    await eventually(lambda: any(note.get("type") == "export:progress" for note in heard), message="the announcement")

    stored = await world.stored_events(claimed.id)
    assert heard[heard.index({"said": "before the commit"}) + 1:] == [
        {"jobId": claimed.id, "seq": row.seq, "type": "export:progress", "payload": stored[-1]}]
    assert [(record.seq, record.payload) for record in mine] == [(row.seq, stored[-1])]


async def test_a_rolled_back_progress_report_is_never_announced(world, announcing, monkeypatch):
    store, heard, probe, mine = announcing
    claimed = await world.runtime.store.claim((await new_job(world)).id, lease_seconds=60)
    announce = AnnouncingConnection.announce_at_commit

    def announce_then_fail(connection, record):
        announce(connection, record)
        raise RuntimeError("the transaction fails after its announcement was given")

    monkeypatch.setattr(AnnouncingConnection, "announce_at_commit", announce_then_fail)
    with pytest.raises(RuntimeError):
        await report(store, claimed, progress=10, message="rolled back")
    monkeypatch.setattr(AnnouncingConnection, "announce_at_commit", announce)
    for step in (20, 30):  # the next transactions on the store's connections commit progress of their own
        await report(store, claimed, progress=step)
    await said_and_heard(probe, heard, "after the commits")

    stored = await world.stored_events(claimed.id)
    assert [(e["type"], e.get("progress")) for e in stored][2:] == [("export:progress", 20), ("export:progress", 30)]
    assert [note["payload"] for note in heard if note.get("type") == "export:progress"] == stored[2:]
    assert [record.payload for record in mine] == stored[2:]


async def test_a_progress_report_is_left_to_the_commit_to_announce_and_its_loss_to_the_listeners(
        world, announcing, monkeypatch):
    """The trigger does not announce progress (migration 0005): an announcement lost after the commit is lost."""
    store, heard, probe, _ = announcing
    claimed = await world.runtime.store.claim((await new_job(world)).id, lease_seconds=60)
    monkeypatch.setattr(AnnouncingConnection, "lose", lambda record: record.job_id == claimed.id)
    assert await report(store, claimed, progress=10) is not None
    monkeypatch.setattr(AnnouncingConnection, "lose", None)
    announced = await report(store, claimed, progress=20)
    await said_and_heard(probe, heard, "after the commits")

    assert [note["seq"] for note in heard if note.get("type") == "export:progress"] == [announced.seq]
    assert [e["seq"] for e in await world.stored_events(claimed.id)][-2:] == [announced.seq - 1, announced.seq]


async def test_an_export_reads_its_project_as_the_repository_reads_it(world, published):
    store = world.runtime.store
    chosen = world.image_ids[1:]
    for selection in (None, chosen, []):
        images, polygons = await store.project_rows(world.project_id, selection)

        def read(repo, selection=selection):
            rows = repo.images_of(world.project_id, selection)
            return rows, repo.polygons_of([row.id for row in rows]) if rows else []

        expected_images, expected_polygons = await store.query(read)
        assert [(r.id, r.name, r.width, r.height, r.storage_key) for r in images] == [
            (r.id, r.name, r.width, r.height, r.storage_key) for r in expected_images]
        assert [tuple(row) for row in polygons] == [tuple(row) for row in expected_polygons]
    assert len((await store.project_rows(world.project_id, chosen))[0]) == 2
    assert (await store.project_rows(world.project_id, []))[0] == []


async def test_the_timestamps_written_in_sql_read_as_iso_writes_them(world, backend):
    if backend != "postgres":
        pytest.skip("SQLite's payloads are built by the models themselves")
    from exportd.store.direct import iso_sql

    moments = [datetime(2026, 11, 30, 14, 32, 5, tzinfo=UTC),  # a whole second: no fraction at all
               datetime(2026, 11, 30, 14, 32, 5, 120000, tzinfo=UTC),
               datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
               datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
    for moment in moments:
        naive = moment.replace(tzinfo=None)
        written = await world.runtime.store.query(lambda repo, naive=naive: repo.conn.exec_driver_sql(
            f"SELECT {iso_sql('$1::timestamp')}", (naive,)).scalar_one())
        assert written == iso(moment)


@pytest.mark.parametrize("other_commits", [True, False], ids=["other-commits", "other-rolls-back"])
async def test_a_completion_racing_another_for_the_name_gets_the_next_one_or_the_name_if_the_other_gives_up(
        world, backend, published, other_commits):
    """Another transaction has written the plain name, not yet committed (a concurrent completion); this
    completion chose the plain name too, from a snapshot that cannot see it. The unique index makes it
    wait for the other: if that commits, it chooses again and takes the next name; if it rolls back, the
    plain name is free. (SQLite has one writer: no interleaving.)"""
    if backend != "postgres":
        pytest.skip("one writer on SQLite: write transactions cannot interleave")
    store = world.runtime.store
    first = await store.claim((await new_job(world)).id, lease_seconds=60)
    second = await store.claim((await new_job(world)).id, lease_seconds=60)
    plain, short, _ = export_file_names("Spheroids", STARTED, second.id)
    async with users_row_held(world.user_id) as (other, transaction):
        await other.execute("UPDATE export_jobs SET file_name = $1 WHERE id = $2", plain, first.id)
        waiting = asyncio.create_task(complete(world, second))
        await until_another_waits_for_a_lock(other, "the completion to wait for the other's name")
        assert not waiting.done()
        await (transaction.commit() if other_commits else transaction.rollback())
        done = await asyncio.wait_for(waiting, 10)
    assert done.file_name == (short if other_commits else plain)
    assert [record.type for record in published if record.job_id == second.id] == [
        "export:queued", "export:started", "export:completed"]  # one completion, announced once


async def test_only_the_owner_and_those_it_is_shared_with_start_exports_of_a_live_project(tmp_path):
    world = await make_world(tmp_path, images=0, max_active_exports_per_user=5)
    try:
        await world.runtime.engine.stop()
        services = world.runtime.services
        guest = await services.register(Credentials(email="bob@example.com", password="correct horse"))
        with pytest.raises(ProjectNotFound):
            await services.start_export(guest.id, world.project_id, ExportRequest())
        await services.share(world.user_id, world.project_id, "bob@example.com")
        job, _ = await services.start_export(guest.id, world.project_id, ExportRequest())
        assert job.user_id == guest.id
        await services.delete_project(world.user_id, world.project_id)
        for user_id in (world.user_id, guest.id):
            with pytest.raises(ProjectNotFound):
                await services.start_export(user_id, world.project_id, ExportRequest())
        with pytest.raises(ProjectNotFound):
            await services.start_export(world.user_id, "no-such-project", ExportRequest())
        assert [e["type"] for e in await world.stored_events(job.id)][0] == "export:queued"
    finally:
        await world.runtime.stop()


async def test_a_start_for_an_account_that_is_gone_is_unauthorized_and_stores_nothing(world, published):
    with pytest.raises(Unauthorized):
        await world.runtime.services.start_export("no-such-user", world.project_id, ExportRequest())
    assert published == []


async def test_a_completion_cancelled_while_it_waits_for_the_lock_leaves_no_transaction_behind(
        world, backend, published):
    if backend != "postgres":
        pytest.skip("the direct statements are PostgreSQL's")
    store = world.runtime.store
    holder = await store.claim((await new_job(world)).id, lease_seconds=60)
    claimed = await store.claim((await new_job(world)).id, lease_seconds=60)
    async with users_row_held(world.user_id) as (other, transaction):
        plain = export_file_names("Spheroids", STARTED, claimed.id)[0]
        await other.execute("UPDATE export_jobs SET file_name = $1 WHERE id = $2", plain, holder.id)
        waiting = asyncio.create_task(complete(world, claimed))
        await until_another_waits_for_a_lock(other, "the completion to wait for the other's name")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await transaction.commit()

        async def nothing_left_open() -> bool:
            return not await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'")
        await eventually(nothing_left_open, 10, message="no connection left inside a transaction")
        for _ in range(12):  # every pooled connection again, one after another
            assert (await store.query(lambda repo: repo.job(claimed.id))).status == "processing"
        assert await complete(world, claimed) is not None


async def test_the_owners_cancel_stores_the_payload_its_model_gives_and_keeps_its_guards(world, backend, published):
    """On PostgreSQL the owner's cancel is one statement (``Store.cancel_as_owner``); elsewhere it has no direct
    path and the service decides through ``Repository``."""
    store = world.runtime.store
    pending = await new_job(world)
    running = await store.claim((await new_job(world)).id, lease_seconds=60)
    if backend != "postgres":
        assert await store.cancel_as_owner(pending.id, user_id=world.user_id, project_id=world.project_id) is None
        assert (await world.job(pending.id)).status == "pending"
        return
    stranger = await world.services.register(Credentials(email="eve@example.com", password="correct horse"))
    assert await store.cancel_as_owner(pending.id, user_id=stranger.id, project_id=world.project_id) is None
    assert await store.cancel_as_owner(pending.id, user_id=world.user_id, project_id="another") is None
    assert (await world.job(pending.id)).status == "pending"

    for job, previous in ((pending, "pending"), (running, "processing")):
        before = len(published)
        done = await store.cancel_as_owner(job.id, user_id=world.user_id, project_id=world.project_id)
        cancelled = ev.Cancelled(
            **base(done), cancelled_at=iso(done.updated_at), reason=CancelReason.USER_CANCELLED,
            cancelled_by=world.user_id, previous_status=previous, progress=job.progress,
            message=ev.CANCEL_MESSAGES[CancelReason.USER_CANCELLED])
        assert (done.status, done.seq, done.previous_status, done.reason, done.cancelled_by) == (
            "cancelled", job.seq + 1, previous, "user_cancelled", world.user_id)
        assert (done.cancelled_at, done.lease_expires_at, done.message) == (done.updated_at, None, "Export cancelled")
        stored = await world.stored_events(job.id)
        assert stored[-1] == cancelled.to_json() and len(stored) == job.seq + 1
        assert [(record.payload, record.rooms) for record in published[before:]] == [
            (stored[-1], (world.user_id,))]  # handed to the listeners after the commit, once

    assert await store.cancel_as_owner(pending.id, user_id=world.user_id, project_id=world.project_id) is None
    assert (await world.services.cancel(world.user_id, world.project_id, pending.id)).seq == pending.seq + 1
    finished = await complete(world, await store.claim((await new_job(world)).id, lease_seconds=60))
    assert await store.cancel_as_owner(finished.id, user_id=world.user_id, project_id=world.project_id) is None
    with pytest.raises(ExportNotCancellable):  # decided by the service through Repository
        await world.services.cancel(world.user_id, world.project_id, finished.id)
