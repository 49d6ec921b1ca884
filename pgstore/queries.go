package pgstore

// Statements the store runs, with {{schema}} and the channel placeholders
// filled in by [New].
const (
	qAppend = iota
	qRead
	qCreateTask
	qGetTask
	qGetTaskHead
	qGetTaskByKey
	qLockOwner
	qCountLive
	qTaskExists
	qRequestCancel
	qDeleteTerminal
	qPruneTerminal
	qTrim
	qSuspensionDup
	qInsertSuspension
	qGetSuspension
	qGetSuspensionForUpdate
	qListSuspensions
	qGetReceipt
	qInsertReceipt
	qResolveSuspension
	qExpireSuspension
	qCloseSuspension
	qExpireSuspensions
	qPendingResumes
	qMarkDispatched
	qDeleteReceipts
	qLockTask
	qAcquireLease
	qRenewLease
	qReleaseLease
	qExpiredLeases
	qNotifyControl
	qNotifyEvents
	numQueries
)

const (
	taskCols = `id, owner_id, client_request_id, task_type, input, metadata, attachments, fingerprint,
		status, last_seq, cancel_requested, cancel_reason, created_at, updated_at`
	// taskHeadCols are taskCols with NULL for input, metadata and
	// attachments, which are not read.
	taskHeadCols = `id, owner_id, client_request_id, task_type, NULL::json, NULL::json, NULL::json, fingerprint,
		status, last_seq, cancel_requested, cancel_reason, created_at, updated_at`
	suspensionCols = `task_id, suspend_id, payload, expires_at, status, event_seq, resolved_action_id,
		resume_status, created_at, closed_at`
	receiptCols = `task_id, client_action_id, suspend_id, action_type, payload, metadata, actor_id,
		fingerprint, event_seq, created_at`
)

// deleteTerminal selects the tasks DeleteTerminalTasks removes ($1: ended
// before, $2: limit) and deletes what they own; the statement ends with the
// delete of the tasks themselves.
const deleteTerminal = `WITH doomed AS (
			SELECT id FROM {{schema}}.tasks WHERE terminal_at < $1
			ORDER BY terminal_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
		), de AS (
			DELETE FROM {{schema}}.events WHERE task_id IN (SELECT id FROM doomed)
		), ds AS (
			DELETE FROM {{schema}}.suspensions WHERE task_id IN (SELECT id FROM doomed)
		), dr AS (
			DELETE FROM {{schema}}.receipts WHERE task_id IN (SELECT id FROM doomed)
		)
		`

var queryTexts = [numQueries]string{
	qAppend: `SELECT code, seq, status, type, created_at, payload FROM {{schema}}.append_event($1, $2, $3, $4, $5, $6, $7)`,

	// Read checks the cursor against the task and reads in one statement,
	// so that the check and the events come from one snapshot.
	qRead: `SELECT t.last_seq, t.first_seq, e.seq, e.type, e.created_at, e.payload, e.idem_key
		FROM {{schema}}.tasks t
		LEFT JOIN LATERAL (
			SELECT ev.seq, ev.type, ev.created_at, ev.payload, ev.idem_key FROM {{schema}}.events ev
			WHERE ev.task_id = t.id AND ev.seq > greatest($2, t.first_seq - 1)
				AND $2 <= t.last_seq AND ($2 = 0 OR $2 >= t.first_seq - 1)
			ORDER BY ev.seq LIMIT $3
		) e ON true
		WHERE t.id = $1
		ORDER BY e.seq`,

	// CreateTask inserts unless (owner, clientRequestId) exists and returns
	// the row with created=true, or the existing row with created=false.
	// The existing row may be invisible to this statement's snapshot (it
	// committed while the insert waited for it); then no row comes back
	// and the caller reads it with qGetTaskByKey.
	qCreateTask: `WITH ins AS (
			INSERT INTO {{schema}}.tasks (id, owner_id, client_request_id, task_type, input, metadata, attachments,
				fingerprint, status, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ACCEPTED', $9, $10)
			ON CONFLICT ON CONSTRAINT tasks_request_key DO NOTHING
			RETURNING ` + taskCols + `
		)
		SELECT true, ` + taskCols + ` FROM ins
		UNION ALL
		SELECT false, ` + taskCols + ` FROM {{schema}}.tasks
			WHERE owner_id = $2 AND client_request_id = $3 AND NOT EXISTS (SELECT 1 FROM ins)`,
	qGetTask:     `SELECT ` + taskCols + ` FROM {{schema}}.tasks WHERE id = $1`,
	qGetTaskHead: `SELECT ` + taskHeadCols + ` FROM {{schema}}.tasks WHERE id = $1`,
	// LockOwner serialises CreateLiveTask per owner (and schema) across
	// every connection, until the transaction ends.
	qLockOwner: `SELECT pg_advisory_xact_lock(hashtextextended({{schema_literal}} || '/' || $1, 0))`,
	// CountLive counts an owner's tasks that have not ended, up to $2.
	qCountLive: `SELECT count(*) FROM (
			SELECT 1 FROM {{schema}}.tasks WHERE owner_id = $1 AND terminal_at IS NULL LIMIT $2
		) live`,
	qGetTaskByKey: `SELECT ` + taskCols + ` FROM {{schema}}.tasks WHERE owner_id = $1 AND client_request_id = $2`,
	qTaskExists:   `SELECT EXISTS (SELECT 1 FROM {{schema}}.tasks WHERE id = $1)`,

	qRequestCancel: `WITH upd AS (
			UPDATE {{schema}}.tasks SET cancel_requested = true, cancel_reason = $2, updated_at = $3
			WHERE id = $1 AND NOT cancel_requested AND terminal_at IS NULL
			RETURNING ` + taskCols + `
		)
		SELECT pg_notify({{control_channel}}, id) IS NULL, ` + taskCols + ` FROM upd`,

	qDeleteTerminal: deleteTerminal + `DELETE FROM {{schema}}.tasks WHERE id IN (SELECT id FROM doomed)`,
	qPruneTerminal: deleteTerminal + `DELETE FROM {{schema}}.tasks WHERE id IN (SELECT id FROM doomed)
		RETURNING ` + taskCols,

	qTrim: `WITH t AS (
			UPDATE {{schema}}.tasks SET first_seq = greatest(first_seq, last_seq - $2 + 1)
			WHERE id = $1 RETURNING first_seq
		), d AS (
			DELETE FROM {{schema}}.events e USING t
			WHERE e.task_id = $1 AND e.seq < t.first_seq AND e.idem_key IS NULL
		)
		SELECT count(*) FROM t`,

	// SuspensionDup locks the task row and says whether the suspension id
	// is taken; no row means no task.
	qSuspensionDup: `SELECT EXISTS (SELECT 1 FROM {{schema}}.suspensions WHERE task_id = $1 AND suspend_id = $2)
		FROM {{schema}}.tasks WHERE id = $1 FOR UPDATE`,
	qInsertSuspension: `INSERT INTO {{schema}}.suspensions (task_id, suspend_id, payload, expires_at, status, event_seq,
			resume_status, created_at)
		VALUES ($1, $2, $3, $4, 'OPEN', $5, 'NONE', $6)`,
	qGetSuspension:          `SELECT ` + suspensionCols + ` FROM {{schema}}.suspensions WHERE task_id = $1 AND suspend_id = $2`,
	qGetSuspensionForUpdate: `SELECT ` + suspensionCols + ` FROM {{schema}}.suspensions WHERE task_id = $1 AND suspend_id = $2 FOR UPDATE`,
	qListSuspensions:        `SELECT ` + suspensionCols + ` FROM {{schema}}.suspensions WHERE task_id = $1 ORDER BY event_seq`,
	qGetReceipt:             `SELECT ` + receiptCols + ` FROM {{schema}}.receipts WHERE task_id = $1 AND client_action_id = $2`,
	qInsertReceipt: `INSERT INTO {{schema}}.receipts (` + receiptCols + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
	qResolveSuspension: `UPDATE {{schema}}.suspensions
		SET status = 'RESOLVED', resolved_action_id = $3, closed_at = $4, resume_status = 'PENDING'
		WHERE task_id = $1 AND suspend_id = $2
		RETURNING ` + suspensionCols,
	qExpireSuspension: `UPDATE {{schema}}.suspensions SET status = 'EXPIRED', closed_at = $3
		WHERE task_id = $1 AND suspend_id = $2 RETURNING ` + suspensionCols,
	qCloseSuspension: `UPDATE {{schema}}.suspensions SET status = $3, closed_at = $4
		WHERE task_id = $1 AND suspend_id = $2 AND status = 'OPEN' RETURNING ` + suspensionCols,
	qExpireSuspensions: `UPDATE {{schema}}.suspensions s SET status = 'EXPIRED', closed_at = $1
		FROM (
			SELECT task_id, suspend_id FROM {{schema}}.suspensions
			WHERE status = 'OPEN' AND expires_at <= $1
			ORDER BY expires_at, task_id, event_seq LIMIT $2 FOR UPDATE SKIP LOCKED
		) due
		WHERE s.task_id = due.task_id AND s.suspend_id = due.suspend_id AND s.status = 'OPEN'
		RETURNING s.task_id, s.suspend_id, s.payload, s.expires_at, s.status, s.event_seq,
			s.resolved_action_id, s.resume_status, s.created_at, s.closed_at`,
	qPendingResumes: `SELECT ` + suspensionCols + ` FROM {{schema}}.suspensions
		WHERE resume_status = 'PENDING' AND status = 'RESOLVED'
		ORDER BY closed_at, task_id, event_seq LIMIT $1`,
	qMarkDispatched: `UPDATE {{schema}}.suspensions SET resume_status = 'DISPATCHED'
		WHERE task_id = $1 AND suspend_id = $2 AND resume_status = 'PENDING'`,
	qDeleteReceipts: `DELETE FROM {{schema}}.receipts r USING (
			SELECT r2.task_id, r2.client_action_id FROM {{schema}}.receipts r2
			LEFT JOIN {{schema}}.suspensions s ON s.task_id = r2.task_id AND s.suspend_id = r2.suspend_id
			WHERE r2.created_at < $1 AND s.resume_status IS DISTINCT FROM 'PENDING'
			ORDER BY r2.created_at, r2.task_id, r2.client_action_id LIMIT $2
			FOR UPDATE OF r2 SKIP LOCKED
		) old
		WHERE r.task_id = old.task_id AND r.client_action_id = old.client_action_id`,

	// LockTask locks the task row and returns what the transactional
	// operations decide on.
	qLockTask: `SELECT status, terminal_at IS NOT NULL, lease_holder, lease_expires_at
		FROM {{schema}}.tasks WHERE id = $1 FOR UPDATE`,
	qAcquireLease: `UPDATE {{schema}}.tasks SET lease_holder = $2, lease_expires_at = $3 WHERE id = $1`,
	qRenewLease: `UPDATE {{schema}}.tasks SET lease_expires_at = $3
		WHERE id = $1 AND lease_holder = $2 AND terminal_at IS NULL`,
	qReleaseLease: `UPDATE {{schema}}.tasks SET lease_holder = NULL, lease_expires_at = NULL
		WHERE id = $1 AND lease_holder = $2`,
	qExpiredLeases: `SELECT id, lease_holder, lease_expires_at FROM {{schema}}.tasks
		WHERE lease_holder IS NOT NULL AND terminal_at IS NULL AND lease_expires_at <= $1
		ORDER BY lease_expires_at, id LIMIT $2`,
	qNotifyControl: `SELECT pg_notify({{control_channel}}, $1)`,
	qNotifyEvents:  `SELECT pg_notify({{events_channel}}, id) FROM unnest($1::text[]) AS id`,
}
