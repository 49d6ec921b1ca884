// Package fanout is the event fan-out engine behind long polling, SSE,
// WebSocket and Go subscribers: one [Hub] per taskbridge.Service.
//
// For every task with at least one live subscriber the hub keeps a topic:
// it watches the task's log ([Source.Watch]), reads each new event once as a
// [Frame] (encoded once by the Source) and keeps the newest frames in a
// window. Subscribers do not own queues: each remembers the Seq of the last
// event it delivered and takes the frames after it from the window (Seqs
// are dense, so that is an index), reading an immutable view of the window
// without a lock. A subscriber that falls behind the window, or that is
// still replaying history, reads the Source itself with its own cursor; it
// rejoins the window when it has caught up. Nothing is ever dropped, and a
// slow subscriber costs nobody else anything: transports disconnect it
// through their write watchdogs and it resumes by cursor. An idle stream
// costs no goroutine: heartbeats come from one scheduler goroutine per
// distinct interval.
//
// A topic with a single member, the usual shape (one app watching its
// task), is solo: its watch callback only signals the member, whose Next
// reads the new events from the Source itself, as a replaying subscriber
// does; no fetcher goroutine runs and no window is kept. The member reads only when an
// append (or the switch to solo, or a full batch) left it stale, so a Next
// with nothing new, which a transport may make on the goroutine holding
// its connection, reads nothing. A second member switches the topic to its
// fetcher and window. A fetch runs on a goroutine of its own, so that a
// slow read delays no other topic, but goroutines that finished one wait
// for the next (up to 64 of them, while the hub has subscriptions) rather
// than a new one starting, and growing its stack, per append.
//
// When the Source reads inline (Config.InlineReads: an in-memory store) and
// the member has a SubscribeOpts.Deliver, a solo topic's watch callback
// delivers on the appending goroutine: if the member's lock is free (see
// [Subscription.Lock]), it reads and takes the new events and hands them to
// Deliver, which writes them without blocking; the member's goroutine is
// woken only for what the socket did not take. A member that is busy, and
// a read that fails or fills a batch, fall back to the signal. A shared
// topic's fetcher, after publishing new frames, hands them the same way to
// its members with a Deliver (whatever the Source), split among up to
// GOMAXPROCS goroutines, and signals the others: one write per member
// instead of a wake-up per member.
//
// Wake-ups are paced: every 64th subscriber goroutine the hub wakes, the
// waking goroutine yields (runtime.Gosched), so the woken ones run in order
// before the Go scheduler's per-P run queue overflows into its global
// queue, where they would wait behind fresh wake-ups (Config.DisableWakePacing
// turns it off).
//
// The frames a subscription reads for itself (a replay, a solo member's
// reads) are handed to its transport alone, which gives them back with
// [Release] once it has written them or copied their bytes; a Source that
// makes its frames with [NewFrame] reuses their memory, so a solo topic's
// delivery, from the read to the write, allocates nothing (a window's
// frames are shared and left to the garbage collector).
//
// A long poll's [Hub.Wait] is a member that takes no frames: when its topic
// signals it, it calls the poll's own read of its store, whose answer the
// poll returns.
//
// # Cursors
//
// A subscription delivers the events strictly after its cursor. Cursor 0
// means "from the oldest retained event" for the subscription's first read
// only; from then on the subscription is held to "strictly after the last
// delivered Seq" like any other, because it could have delivered event 1.
// Events removed by retention before a subscription delivered them end it
// with Config.ErrExpired, never with a silent gap.
//
// # Dependencies
//
// The engine does not know the taskbridge models: the host package supplies
// a [Source] (its event store, with each event encoded to JSON once), the
// read batch size, a logger, a gauge hook, and the sentinel errors it
// returns and recognises ([Config]). Transports reach the hub of a
// taskbridge.Service through package bridge.
package fanout
