-- taskbridge pgstore, version 1: tasks, events, suspensions, receipts and
-- the append function. {{schema}} is the quoted schema name;
-- {{events_channel}} and {{control_channel}} are quoted NOTIFY channel
-- names (string literals).

CREATE TABLE {{schema}}.tasks (
    id                text        PRIMARY KEY,
    owner_id          text        NOT NULL,
    client_request_id text        NOT NULL,
    task_type         text        NOT NULL,
    input             json,
    metadata          json,
    attachments       json,
    fingerprint       text        NOT NULL,
    status            text        NOT NULL,
    -- last_seq is the Seq of the newest event; first_seq that of the oldest
    -- retained one (last_seq + 1 when none is retained).
    last_seq          bigint      NOT NULL DEFAULT 0,
    first_seq         bigint      NOT NULL DEFAULT 1,
    cancel_requested  boolean     NOT NULL DEFAULT false,
    cancel_reason     text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    -- terminal_at is the CreatedAt of the terminal event.
    terminal_at       timestamptz,
    lease_holder      text,
    lease_expires_at  timestamptz,
    CONSTRAINT tasks_request_key UNIQUE (owner_id, client_request_id)
);
CREATE INDEX tasks_newest ON {{schema}}.tasks (created_at, id);
CREATE INDEX tasks_owner_newest ON {{schema}}.tasks (owner_id, created_at, id);
CREATE INDEX tasks_terminal ON {{schema}}.tasks (terminal_at, id) WHERE terminal_at IS NOT NULL;
CREATE INDEX tasks_lease_expiry ON {{schema}}.tasks (lease_expires_at, id)
    WHERE lease_holder IS NOT NULL AND terminal_at IS NULL;

CREATE TABLE {{schema}}.events (
    task_id    text        NOT NULL,
    seq        bigint      NOT NULL,
    type       text        NOT NULL,
    created_at timestamptz NOT NULL,
    payload    json        NOT NULL,
    -- idem_key is the event's idempotency key, byte for byte.
    idem_key   bytea,
    PRIMARY KEY (task_id, seq)
);
CREATE UNIQUE INDEX events_idem_key ON {{schema}}.events (task_id, idem_key) WHERE idem_key IS NOT NULL;

CREATE TABLE {{schema}}.suspensions (
    task_id            text        NOT NULL,
    suspend_id         text        NOT NULL,
    -- payload is the TASK_SUSPENDED payload without expiresAt.
    payload            json        NOT NULL,
    expires_at         timestamptz,
    status             text        NOT NULL,
    event_seq          bigint      NOT NULL,
    resolved_action_id text        NOT NULL DEFAULT '',
    resume_status      text        NOT NULL,
    created_at         timestamptz NOT NULL,
    closed_at          timestamptz,
    PRIMARY KEY (task_id, suspend_id)
);
CREATE INDEX suspensions_due ON {{schema}}.suspensions (expires_at, task_id, event_seq)
    WHERE status = 'OPEN' AND expires_at IS NOT NULL;
CREATE INDEX suspensions_pending ON {{schema}}.suspensions (closed_at, task_id, event_seq)
    WHERE resume_status = 'PENDING';

CREATE TABLE {{schema}}.receipts (
    task_id          text        NOT NULL,
    client_action_id text        NOT NULL,
    suspend_id       text        NOT NULL,
    action_type      text        NOT NULL,
    payload          json,
    metadata         json,
    actor_id         text        NOT NULL,
    fingerprint      text        NOT NULL,
    event_seq        bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (task_id, client_action_id)
);
CREATE INDEX receipts_created ON {{schema}}.receipts (created_at, task_id, client_action_id);

-- next_status is taskbridge.NextStatus for valid event types: the task's
-- new status, or NULL when the event is refused. A Go test checks that the
-- two agree.
CREATE FUNCTION {{schema}}.next_status(cur text, et text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN cur IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN NULL
        WHEN et = 'TASK_COMPLETED' THEN 'COMPLETED'
        WHEN et = 'TASK_FAILED' THEN 'FAILED'
        WHEN et = 'TASK_CANCELLED' THEN 'CANCELLED'
        WHEN cur = 'ACCEPTED' AND et = 'TASK_STARTED' THEN 'RUNNING'
        WHEN cur = 'RUNNING' AND et IN ('TASK_PROGRESS', 'TASK_MESSAGE', 'TASK_SUSPENDED', 'TASK_ACTION_ACCEPTED')
            THEN 'RUNNING'
        ELSE NULL
    END
$$;

-- append_event appends one event in one round trip: it locks the task row,
-- answers a repeated idempotency key with the earlier event, applies the
-- state machine, assigns the next Seq, updates the task, cancels OPEN
-- suspensions on a terminal event, trims the log to max_events (keyed
-- events are kept, so their keys stay answerable) and, when p_notify is
-- set, notifies the events channel (delivered on commit).
--
-- code is 'ok', 'duplicate' (seq/type/created_at/payload are the earlier
-- event's), 'not_found', or 'refused' (status is the task's status).
CREATE FUNCTION {{schema}}.append_event(
    p_task_id text, p_type text, p_created_at timestamptz, p_payload json, p_idem_key bytea, p_max_events bigint, p_notify boolean
) RETURNS TABLE (code text, seq bigint, status text, type text, created_at timestamptz, payload json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    cur_status text;
    cur_last   bigint;
    cur_first  bigint;
    new_status text;
    new_seq    bigint;
    new_first  bigint;
BEGIN
    SELECT t.status, t.last_seq, t.first_seq INTO cur_status, cur_last, cur_first
        FROM {{schema}}.tasks t WHERE t.id = p_task_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, 0::bigint, ''::text, ''::text, NULL::timestamptz, NULL::json;
        RETURN;
    END IF;
    IF p_idem_key IS NOT NULL THEN
        RETURN QUERY SELECT 'duplicate'::text, e.seq, cur_status, e.type, e.created_at, e.payload
            FROM {{schema}}.events e WHERE e.task_id = p_task_id AND e.idem_key = p_idem_key;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    new_status := {{schema}}.next_status(cur_status, p_type);
    IF new_status IS NULL THEN
        RETURN QUERY SELECT 'refused'::text, cur_last, cur_status, ''::text, NULL::timestamptz, NULL::json;
        RETURN;
    END IF;
    new_seq := cur_last + 1;
    new_first := cur_first;
    IF p_max_events > 0 AND new_seq - cur_first + 1 > p_max_events THEN
        new_first := new_seq - p_max_events + 1;
    END IF;
    INSERT INTO {{schema}}.events (task_id, seq, type, created_at, payload, idem_key)
        VALUES (p_task_id, new_seq, p_type, p_created_at, p_payload, p_idem_key);
    UPDATE {{schema}}.tasks t SET
        status = new_status, last_seq = new_seq, first_seq = new_first, updated_at = p_created_at,
        terminal_at = CASE WHEN new_status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN p_created_at END
        WHERE t.id = p_task_id;
    IF new_status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN
        UPDATE {{schema}}.suspensions s SET status = 'CANCELLED', closed_at = p_created_at
            WHERE s.task_id = p_task_id AND s.status = 'OPEN';
    END IF;
    IF new_first > cur_first THEN
        DELETE FROM {{schema}}.events e
            WHERE e.task_id = p_task_id AND e.seq >= cur_first AND e.seq < new_first AND e.idem_key IS NULL;
    END IF;
    IF p_notify THEN
        PERFORM pg_notify({{events_channel}}, p_task_id);
    END IF;
    RETURN QUERY SELECT 'ok'::text, new_seq, new_status, p_type, p_created_at, p_payload;
END
$$;
