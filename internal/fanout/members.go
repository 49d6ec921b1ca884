package fanout

import "iter"

// members is a topic's member set. Most topics have one member (one
// client watching its task), which is kept inline: a map is made only
// from the second member on, and dropped again when one is left.
type members struct {
	one  *Subscription
	many map[*Subscription]struct{}
}

// add adds sub, which must not be a member.
func (m *members) add(sub *Subscription) {
	switch {
	case m.many != nil:
		m.many[sub] = struct{}{}
	case m.one == nil:
		m.one = sub
	default:
		m.many = map[*Subscription]struct{}{m.one: {}, sub: {}}
		m.one = nil
	}
}

// remove removes sub if it is a member.
func (m *members) remove(sub *Subscription) {
	if m.many == nil {
		if m.one == sub {
			m.one = nil
		}
		return
	}
	delete(m.many, sub)
	if len(m.many) == 1 {
		for last := range m.many {
			m.one = last
		}
		m.many = nil
	}
}

// len is the number of members.
func (m *members) len() int {
	if m.many != nil {
		return len(m.many)
	}
	if m.one != nil {
		return 1
	}
	return 0
}

// all yields every member; the set must not change meanwhile.
func (m *members) all() iter.Seq[*Subscription] {
	return func(yield func(*Subscription) bool) {
		if m.many == nil {
			if m.one != nil {
				yield(m.one)
			}
			return
		}
		for sub := range m.many {
			if !yield(sub) {
				return
			}
		}
	}
}
