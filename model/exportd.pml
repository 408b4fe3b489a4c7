/*
 * The export job protocol of exportd, for the spin model checker.
 *
 * One job, two workers, the reaper, the janitor, a user who may cancel, a
 * client who may download, and the relay that emits committed events. Every
 * transition is one atomic guarded statement that bumps seq and writes its
 * event (store/repository.py); a worker's statements are fenced by its attempt
 * number; progress is guarded by `progress <= new` and set back to 0 by a claim
 * and a requeue; each attempt writes in its own folder; events go out only
 * after they committed, in seq order.
 *
 * A worker may stop or stall anywhere (spin explores every prefix), and reports
 * its progress out of order (a late report of 1 after 2). The reaper and the
 * janitor read the job, then act on what they read, as they do.
 *
 * Mutations (spin -D...): NO_GUARD drops `progress <= new`; NO_FENCE drops the
 * attempt fence of the worker's statements; NO_RESET keeps progress across
 * attempts; SHARED_FOLDER puts every attempt in one folder; EMIT_BEFORE_COMMIT
 * announces a completion before its transaction commits. Each must make spin
 * find a counterexample: see README.md.
 */

#define PENDING    0
#define PROCESSING 1
#define COMPLETED  2
#define FAILED     3
#define CANCELLED  4

#define MAX_ATTEMPTS 2
#define TERMINAL(s) (s == COMPLETED || s == FAILED || s == CANCELLED)

#ifdef NO_FENCE
#define HELD_BY(a) (status == PROCESSING)
#else
#define HELD_BY(a) (status == PROCESSING && attempt == a)
#endif

#ifdef NO_GUARD
#define PROGRESS_ALLOWED(v) true
#else
#define PROGRESS_ALLOWED(v) (progress <= v)
#endif

#ifdef SHARED_FOLDER
#define FOLDER(a) 0
#else
#define FOLDER(a) a
#endif

#define MAX_SEQ 16

/* the job's row */
byte status = PENDING;
byte attempt = 0;
byte progress = 0;
byte published = 0;  /* the folder whose ZIP the completion recorded (file_path) */

/* the job's event rows: seq 1 is export:queued */
byte seq = 1;
bool terminal_at[MAX_SEQ];
bool cancelled_at[MAX_SEQ];
bool completed_at[MAX_SEQ];

/* what the store promises, as history */
bool terminal_committed = false;
bool cancel_committed = false;

/* the folders: zip[f] is a finished ZIP in folder f */
bool zip[MAX_ATTEMPTS + 1];

/* what clients saw */
bool completion_seen = false;  /* a client was told the export completed */
byte emitted = 1;
bool terminal_emitted = false;
bool cancel_emitted = false;

inline commit(terminal, cancelled, completed) {
    assert(!terminal_committed);  /* one terminal event, and nothing after it */
    assert(seq < MAX_SEQ - 1);
    seq++;
    terminal_at[seq] = terminal;
    cancelled_at[seq] = cancelled;
    completed_at[seq] = completed;
    if
    :: terminal -> terminal_committed = true
    :: else -> skip
    fi
}

/* a worker's progress report of `v`, fenced and guarded */
inline report(v) {
    atomic {
        if
        :: HELD_BY(me) && PROGRESS_ALLOWED(v) ->
            assert(attempt == me);   /* a stale attempt changes nothing */
            assert(progress <= v);   /* stored progress never falls within an attempt */
            progress = v;
            commit(false, false, false)
        :: else -> skip
        fi
    }
}

proctype Worker() {
    byte me;
end:
    do
    :: atomic {
        status == PENDING && attempt < MAX_ATTEMPTS ->
            attempt++;
            me = attempt;
            status = PROCESSING;
#ifndef NO_RESET
            progress = 0;
#endif
            commit(false, false, false)
        }
        /* the attempt's first report is never refused while it holds the job */
        atomic {
            if
            :: HELD_BY(me) && PROGRESS_ALLOWED(1) ->
                assert(attempt == me);
                progress = 1;
                commit(false, false, false)
            :: else -> assert(!(status == PROCESSING && attempt == me))
            fi
        }
        report(2);
        report(1);  /* a late report, out of order */
        zip[FOLDER(me)] = true;  /* the ZIP is written in the attempt's folder */
        if
        :: true -> atomic {  /* its own time limit: a cancel fenced by its attempt */
            if
            :: HELD_BY(me) ->
                assert(attempt == me);
                status = CANCELLED;
                cancel_committed = true;
                commit(true, true, false)
            :: else -> skip
            fi
            }
            zip[FOLDER(me)] = false
        :: true ->
#ifdef EMIT_BEFORE_COMMIT
            completion_seen = true;  /* announced first, committed (or not) after */
#endif
            atomic {  /* completion, fenced */
            if
            :: HELD_BY(me) ->
                assert(attempt == me);
                assert(!cancel_committed);  /* a committed cancel is never followed by a completion */
                status = COMPLETED;
                published = FOLDER(me);
                commit(true, false, true)
            :: else -> zip[FOLDER(me)] = false  /* lost: it deletes its own folder */
            fi
            }
        fi
    od
}

/* a lease runs out whenever the reaper looks; it acts on the attempt it read */
active proctype Reaper() {
    byte seen;
end:
    do
    :: atomic { status == PROCESSING -> seen = attempt }
        atomic {
            if
            :: status == PROCESSING && attempt == seen && seen < MAX_ATTEMPTS ->
                status = PENDING;
#ifndef NO_RESET
                progress = 0;
#endif
                commit(false, false, false)
            :: status == PROCESSING && attempt == seen && seen == MAX_ATTEMPTS ->
                status = FAILED;
                commit(true, false, false)
            :: else -> skip
            fi
        }
    od
}

/* keeps a folder only if it holds the published ZIP or an attempt that may still run (engine/leases.py) */
active proctype Janitor() {
    byte s, a, p, f;
end:
    do
    :: atomic { s = status; a = attempt; p = published }
        d_step {  /* then deletes on what it read, however the job moved on meanwhile */
            f = 0;
            do
            :: f <= MAX_ATTEMPTS ->
                if
                :: s == COMPLETED && f != p -> zip[f] = false
                :: s == PROCESSING && f < a -> zip[f] = false
                :: s == PENDING && f <= a -> zip[f] = false
                :: s == FAILED || s == CANCELLED -> zip[f] = false
                :: else -> skip
                fi;
                f++
            :: else -> break
            od;
            f = 0
        }
    od
}

active proctype User() {
end:
    atomic {
        (status == PENDING || status == PROCESSING) ->
            status = CANCELLED;
            cancel_committed = true;
            commit(true, true, false)
    }
}

/* a download reads the status, opens the file, and reads the status again (services.open_download) */
active proctype Client() {
    byte f;
end:
    do
    :: atomic { status == COMPLETED -> f = published }
        if
        :: zip[f] ->
            atomic {
                if
                :: status == COMPLETED && published == f ->
                    assert(!cancel_committed);  /* a cancelled export is never downloaded */
                :: else -> skip
                fi
            }
        :: else -> assert(!(status == COMPLETED && published == f))  /* a completed export's ZIP is there */
        fi
    od
}

/* the relay: committed events only, in seq order, each once */
active proctype Relay() {
end:
    do
    :: atomic {
        emitted < seq ->
            emitted++;
            assert(!terminal_emitted);  /* nothing is emitted after a terminal event */
            assert(!(cancel_emitted && completed_at[emitted]));
            assert(!(completion_seen && cancelled_at[emitted]));  /* no cancel after a completion was shown */
            completion_seen = completion_seen || completed_at[emitted];
            terminal_emitted = terminal_at[emitted];
            cancel_emitted = cancel_emitted || cancelled_at[emitted]
        }
    od
}

init {
    atomic { run Worker(); run Worker() }
}
