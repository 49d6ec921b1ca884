// Command tbload measures taskbridge's streaming: fan-out throughput and
// latency, and what idle streams cost the server. It runs against a real
// server over real TCP, and the server runs in a separate process, so the
// client's work does not show up in the server's memory and CPU figures.
//
// # Servers
//
//	tbload server [-addr 127.0.0.1:8080] [-heartbeat 15s] [-sse-hijack]
//
// serves taskbridge (memstore, Service, the sse and ws handlers under
// httpapi, "Authorization: Bearer <subject>" auth) together with the
// benchmark control endpoints below. SSE streams are served inside
// ServeHTTP, or with -sse-hijack on the hijacked connection
// (sse.Config.Hijack).
//
//	tbload baseline-server [-addr 127.0.0.1:8080]
//
// serves a minimal hand-written SSE broadcaster with the same control
// endpoints and the same stream route and frames, as the yardstick: each
// event is encoded once into one []byte that is handed, through a buffered
// channel per subscriber, to every subscriber's handler, which writes it and
// flushes when its channel is drained. No store, no replay, no auth checks,
// and a ticker per stream for heartbeats.
//
// Both print "listening <addr>" on stdout once they accept connections and
// stop on SIGINT or SIGTERM. The control endpoints are unauthenticated: bind
// them to loopback (the default).
//
//	POST /bench/tasks        {"count":n}                      → {"taskIds":[...]}
//	POST /bench/publish      {"taskIds":[...],"events":n,
//	                          "rate":r,"terminal":bool}        → {"startUnixNano":…,"endUnixNano":…}
//	GET  /debug/stats[?gc=1] runtime and process statistics (gc=1 collects garbage first)
//	POST /debug/profile/start?path=FILE, POST /debug/profile/stop   CPU profile of the server
//	GET  /debug/pprof/...    net/http/pprof
//
// Tasks created by /bench/tasks belong to the subject "bench" and hold one
// event, TASK_STARTED with id 1. /bench/publish appends events to every
// listed task, round-robin, at r events per second in total (0: as fast as
// possible), and answers when it is done. Each event is a TASK_PROGRESS
// whose message is the publish time in Unix nanoseconds, so clients can
// compute end-to-end latency; with terminal set the last event of each task
// is TASK_COMPLETED, which ends the task's streams.
//
// # Clients
//
//	tbload fanout -transport sse|ws -subscribers 1000 -tasks 1 -events 100000 [-rate 0]
//
// opens the subscribers (spread round-robin over the tasks), has the server
// publish, and checks that every subscriber received every event of its
// task exactly once and in order, then the end of the stream. It prints
// deliveries per second (events × subscribers over the time from the first
// publish to the last delivery), the latency from publish to the client's
// read, and the CPU time spent by the client and by the server. It exits
// with status 1 if any subscriber missed, repeated or reordered an event.
//
//	tbload idle -transport sse|ws -streams 19000
//
// opens the streams (one task each by default) and leaves them idle. It
// reports the server's heap, goroutine stacks and goroutines per stream,
// waits until every stream has received a heartbeat, checks that the server
// still answers /health promptly and delivers a live event to a sample of
// the streams, and finally checks that closing the streams releases their
// goroutines. Every stream is a file descriptor in both processes: see
// ulimit -n.
//
//	tbload longpoll -polls 5000 -tasks 5000 [-rate 0] [-cold]
//
// parks the long polls (spread round-robin over the tasks, each after its
// task's first event), waits until the server has them all waiting, has it
// publish one event to every task, and checks that every poll returned
// exactly that event. It prints the wake latency (publish to the client's
// read) and the server's CPU time per wake. Each poll's connection has
// first served one poll that returned at once, as for a client polling in
// a loop on a kept-alive connection; -cold parks every poll as the first
// request of a new connection instead.
//
// The clients take -addr to use a running server, or -spawn taskbridge or
// -spawn baseline to start one as a child process on a free loopback port
// (stopped at the end; -spawn-sse-hijack passes -sse-hijack to it). Run
// "tbload <mode> -h" for every flag.
package main
