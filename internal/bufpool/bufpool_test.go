package bufpool_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/bufpool"
)

func TestPool(t *testing.T) {
	t.Parallel()
	p := bufpool.New[*int](4, 8, true)
	s := p.Get()
	require.Empty(t, *s)
	require.GreaterOrEqual(t, cap(*s), 4)
	n := 1
	*s = append(*s, &n, &n)
	full := (*s)[:2]
	p.Put(s)
	require.Empty(t, *s, "Put empties the slice")
	require.Nil(t, full[0], "and clears what it held")

	big := p.Get()
	*big = make([]*int, 0, 100)
	p.Put(big) // too large to keep: dropped, and left as it was
	require.Equal(t, 100, cap(*big))
}
