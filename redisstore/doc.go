// Package redisstore is a [taskbridge.Store] in Redis, so that several
// processes ("replicas") serve one application: a task created on one
// replica streams, is cancelled or answered on any other, and a restart
// loses nothing Redis kept.
//
// It lives in its own module (github.com/taskbridge-go/taskbridge/redisstore)
// so that the root module does not depend on go-redis.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", PoolSize: 20, MaxActiveConns: 20, PipelinePoolSize: -1})
//	store, err := redisstore.New(rdb, redisstore.Config{Prefix: "myapp"})
//	...
//	svc, err := taskbridge.New(taskbridge.Config{Store: store, Executor: exec})
//	...
//	defer rdb.Close()   // the client is yours
//	defer store.Close() // stops the store's own goroutines first
//
// Besides [taskbridge.Store] it implements [taskbridge.ReadinessProbe]
// (PING, and the subscription connection is up), [taskbridge.ControlFeed]
// and [taskbridge.LeaseStore], and honours [taskbridge.TaskEvent]
// IdempotencyKey.
//
// # Atomicity
//
// Every write is one Lua script, so it is one atomic step on the server:
// the state machine check, the next sequence number, the stream entry
// (XADD with the explicit id "<seq>-0"), the task's status, its indexes and
// the PUBLISH that wakes watchers change together. Creates are atomic on
// (owner, clientRequestId), actions on the suspension, across any number
// of replicas. Reads are pipelined commands in one round trip.
//
// go-redis retries a command whose connection broke after it was sent
// (Options.MaxRetries), so a script may reach Redis twice. Each call
// carries a random token, and the scripts that change a task remember the
// results of the task's last 8 tokens, so a retried append, suspension,
// action, cancel request or close is applied once and answers as the
// first run did.
//
// # Keys
//
// With the default prefix "taskbridge", the keys of one task share the hash
// tag {taskId}:
//
//	taskbridge:tasks:{taskId}          hash: the task record and state
//	taskbridge:tasks:{taskId}:events   stream: the event log, entry ids <seq>-0
//	taskbridge:tasks:{taskId}:idem     hash: idempotency keys of appends
//	taskbridge:tasks:{taskId}:susp     hash: suspensions
//	taskbridge:tasks:{taskId}:rcpt     hash: action receipts
//	taskbridge:tasks:{taskId}:wake     pub/sub channel: one message per append
//	taskbridge:control                 pub/sub channel: cancel requests, accepted actions
//	taskbridge:idx:*                   cross-task indexes
//
// The cross-task indexes keep creation idempotency (owner and
// clientRequestId to task), the newest-first listing (per owner and
// global), terminal tasks by end time (DeleteTerminalTasks, FinishedTTL),
// leases by expiry, OPEN suspensions by deadline, PENDING resumes and
// receipts by time. They are sorted sets ordered by member (times are
// encoded to sort as strings), so each maintenance call reads only what it
// returns. A set per owner holds the owner's tasks that have not ended:
// [Store.CreateLiveTask] counts it in the create script, so
// [taskbridge.Config].MaxLiveTasksPerOwner is exact across processes. The
// task record keeps its small fields apart from its input, so
// [Store.GetTaskHead] checks ownership without reading the input.
//
// Creating, ending and deleting a task change the task's keys and the
// indexes in one script, and the maintenance scripts touch several tasks:
// the store needs one Redis server (a primary with replicas, with or
// without Sentinel). Redis Cluster is not supported, and [New] refuses a
// ClusterClient or Ring.
//
// # Retention
//
// Config.MaxLen trims each task's stream as it grows (XADD MAXLEN ~);
// reading from a cursor whose next event was trimmed fails with
// [taskbridge.ErrEventsExpired] (410 EVENTS_EXPIRED), never with a gap.
// [Store.TrimEvents] trims one task exactly. Config.FinishedTTL deletes
// terminal tasks once they ended that long ago, with everything they own,
// through the same script as [Store.DeleteTerminalTasks] (and
// [Store.PruneTerminalTasks], which returns them with their attachments
// so that retention deletes the uploaded files), so the indexes
// stay consistent; later reads fail with [taskbridge.ErrTaskNotFound].
// (Redis key expiry is not used: it would leave index entries behind.)
//
// # Wake-ups
//
// [Store.Watch] needs O(1) Redis connections per process, however many
// tasks and subscribers it serves: one go-redis PubSub connection carries
// a SUBSCRIBE for each task that has watchers in this process (and one for
// the control channel), next to the client's pool. Each append PUBLISHes
// to its task's channel from inside its script, so a subscriber is woken
// on every replica that watches the task, and only there.
//
// go-redis v9 opens connections beyond Options.PoolSize in bursts unless
// MaxActiveConns caps them, and runs pipelines (Read uses one) on a second
// pool of PipelinePoolSize connections (default 10). With
//
//	redis.Options{PoolSize: P, MaxActiveConns: P, PipelinePoolSize: -1}
//
// a process holds at most P+1 connections to Redis, however many tasks and
// streams it serves.
//
// When the subscription connection drops (a network failure, CLIENT KILL,
// a Redis restart), go-redis reconnects and subscribes again; every
// subscription confirmation then calls the channel's watchers, so they
// re-read the log and miss nothing, and control watchers are called with
// "". While the connection is down, [Store.CheckReady] fails.
package redisstore
