package sockettest_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/sockettest"
)

// What one end writes, the other reads, both ways.
func TestPair(t *testing.T) {
	client, server := sockettest.Pair(t)
	for _, ends := range [][2]interface {
		Write([]byte) (int, error)
		Read([]byte) (int, error)
	}{{client, server}, {server, client}} {
		_, err := ends[0].Write([]byte("hello"))
		require.NoError(t, err)
		got := make([]byte, 5)
		_, err = io.ReadFull(ends[1], got)
		require.NoError(t, err)
		require.Equal(t, "hello", string(got))
	}
}
