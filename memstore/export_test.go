package memstore

import "fmt"

// IndexedTasks returns the ids in owner's index, oldest first, after
// checking the index's invariants: every chunk sorted and non-empty (the
// tail may be empty), each chunk after the one before, n the total.
func IndexedTasks(s *Store, owner string) ([]string, error) {
	s.ownersMu.RLock()
	defer s.ownersMu.RUnlock()
	o := s.owners[owner]
	if o == nil {
		return nil, nil
	}
	x := o.byAge
	var ids []string
	var prev *indexEntry
	chunks := append(x.sealed[:len(x.sealed):len(x.sealed)], x.tail)
	for k, c := range chunks {
		if len(c) == 0 && k < len(x.sealed) {
			return nil, fmt.Errorf("sealed chunk %d is empty", k)
		}
		for i := range c {
			if prev != nil && compareEntries(*prev, c[i]) >= 0 {
				return nil, fmt.Errorf("chunk %d: %s is not after %s", k, c[i].id, prev.id)
			}
			prev = &c[i]
			ids = append(ids, c[i].id)
		}
	}
	if len(ids) != x.n {
		return nil, fmt.Errorf("n is %d, the chunks hold %d", x.n, len(ids))
	}
	return ids, nil
}

// Waiting returns how many records wait in each of the store's
// maintenance heaps: "ended" (terminal tasks), "receipts", "expiring"
// (open suspensions with a deadline), "resumes" (pending) and "leases"
// (held).
func Waiting(s *Store) map[string]int {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	return map[string]int{
		"ended": len(s.ended.items), "receipts": len(s.receipts.items), "expiring": len(s.expiring.items),
		"resumes": len(s.resumes.items), "leases": len(s.leases.items),
	}
}
