package fanout

import (
	"sync"
	"time"
)

// HeartbeatDue reports, and clears, that nothing was delivered for the
// heartbeat interval. The caller is expected to send a heartbeat: it is
// reported to the Observer.
func (sub *Subscription) HeartbeatDue() bool {
	if sub.hbDue.Swap(false) {
		sub.markActive()
		if sub.obs != nil && sub.obs.Heartbeat != nil {
			sub.obs.Heartbeat(sub)
		}
		return true
	}
	return false
}

// ClearHeartbeat clears a heartbeat that became due, without sending one:
// the caller has just sent frames, which make it moot.
func (sub *Subscription) ClearHeartbeat() {
	if sub.hbDue.Swap(false) {
		sub.markActive()
	}
}

// hbGroup schedules heartbeats for the subscriptions sharing one interval:
// one goroutine per distinct interval, not a ticker per stream. It runs
// while the group has members.
type hbGroup struct {
	h        *Hub
	interval time.Duration

	mu      sync.Mutex
	members map[*Subscription]struct{}
	running bool
	empty   chan struct{} // signalled when the last member leaves
}

func (g *hbGroup) add(sub *Subscription) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members[sub] = struct{}{}
	if !g.running {
		g.running = true
		if g.empty == nil {
			g.empty = make(chan struct{}, 1)
		}
		g.h.wg.Add(1)
		go g.run()
	}
}

// remove drops sub; the scheduler goroutine exits at once when it was the
// last member, so no goroutine outlives the streams.
func (g *hbGroup) remove(sub *Subscription) {
	g.mu.Lock()
	delete(g.members, sub)
	if len(g.members) == 0 && g.running {
		select {
		case g.empty <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
}

// run ticks at a quarter of the interval, so an idle subscription gets its
// heartbeat between 1 and 1.25 intervals after its last frame (see check).
// It exits when the group is empty.
func (g *hbGroup) run() {
	defer g.h.wg.Done()
	tick := g.tick()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
		case <-g.empty:
		case <-g.h.ctx.Done():
			g.mu.Lock()
			g.running = false
			g.mu.Unlock()
			return
		}
		now := time.Now().UnixNano()
		g.mu.Lock()
		if len(g.members) == 0 {
			g.running = false
			// Drop a stale signal so the next run does not exit at once.
			select {
			case <-g.empty:
			default:
			}
			g.mu.Unlock()
			return
		}
		g.check(now)
		g.mu.Unlock()
	}
}

// tick is how often run checks the members.
func (g *hbGroup) tick() time.Duration { return max(g.interval/4, time.Millisecond) }

// check marks a heartbeat due for the members that have been idle for the
// interval at now, the time of a tick; g.mu is held. A delivery does not
// read the clock: it sets the member's lastActive to 0 (see markActive),
// which the next tick replaces with its own time. So lastActive is the
// first tick after the member's last frame (or heartbeat, or start), and
// the member is due four ticks later, between 1 and 1.25 intervals after
// that frame. Half a tick of slack keeps a tick that ran late from pushing
// the heartbeat to the fifth.
func (g *hbGroup) check(now int64) {
	idle := int64(g.interval - g.tick()/2)
	for sub := range g.members {
		last := sub.lastActive.Load()
		if last == 0 {
			// A delivery since the last tick. A CAS, so that one made
			// meanwhile is seen by the next tick rather than lost.
			sub.lastActive.CompareAndSwap(0, now)
			continue
		}
		if now-last >= idle && !sub.hbDue.Load() {
			sub.hbDue.Store(true)
			sub.signal()
			g.h.woke()
		}
	}
}
