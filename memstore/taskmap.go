package memstore

import (
	"hash/maphash"
	"sync"
)

// taskShards is how many shards a taskMap has: enough that two lookups
// rarely meet on one shard's lock.
const taskShards = 128

// taskMap maps task ids to their state: maps of their own, each under a
// read-write lock, in shards picked by the id's hash. A lookup of a task
// not touched for a while (the usual case with many tasks: each is read
// when one of its events is appended or delivered) costs fewer cache
// misses than in a sync.Map, whose trie is several nodes deep at 100,000
// tasks: GetTaskHead takes a quarter less time there, the same with a
// thousand tasks (BenchmarkGetTaskHead). Each shard's lock is only ever
// held for one map operation, with no other lock taken inside it.
type taskMap struct {
	seed   maphash.Seed
	shards [taskShards]taskShard
}

// taskShard is one shard of a taskMap, padded to a cache line of its own,
// so that readers of neighbouring shards do not contend for one.
type taskShard struct {
	mu sync.RWMutex
	m  map[string]*taskState
	_  [64 - 24 - 8]byte
}

// init prepares an empty map.
func (tm *taskMap) init() {
	tm.seed = maphash.MakeSeed()
	for i := range tm.shards {
		tm.shards[i].m = make(map[string]*taskState)
	}
}

func (tm *taskMap) shard(id string) *taskShard {
	return &tm.shards[maphash.String(tm.seed, id)%taskShards]
}

// load returns the state of task id.
func (tm *taskMap) load(id string) (*taskState, bool) {
	sh := tm.shard(id)
	sh.mu.RLock()
	ts, ok := sh.m[id]
	sh.mu.RUnlock()
	return ts, ok
}

// store sets the state of task id.
func (tm *taskMap) store(id string, ts *taskState) {
	sh := tm.shard(id)
	sh.mu.Lock()
	sh.m[id] = ts
	sh.mu.Unlock()
}

// compareAndDelete removes task id if its state is ts.
func (tm *taskMap) compareAndDelete(id string, ts *taskState) {
	sh := tm.shard(id)
	sh.mu.Lock()
	if sh.m[id] == ts {
		delete(sh.m, id)
	}
	sh.mu.Unlock()
}

// clear removes every task.
func (tm *taskMap) clear() {
	for i := range tm.shards {
		sh := &tm.shards[i]
		sh.mu.Lock()
		sh.m = make(map[string]*taskState)
		sh.mu.Unlock()
	}
}
