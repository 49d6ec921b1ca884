package protocoltest

import (
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// protocolDir is the repository's protocol/ directory, found from this
// file's location (internal/protocoltest/protocoltest.go) so that it does not
// depend on the working directory of the test binary. When the source path
// is unusable (a -trimpath build), it is searched for upwards from the
// working directory instead.
var protocolDir = func() string {
	const marker = "openapi/taskbridge.openapi.yaml"
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "..", "..", "protocol")
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			return dir
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "protocol", marker)); err == nil {
				return filepath.Join(dir, "protocol")
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "protocol"
}()

// Dir returns the path of the repository's protocol/ directory.
func Dir() string { return protocolDir }

// Path returns the path of a file below protocol/, given as slash-separated
// elements, e.g. Path("examples", "task_started.json").
func Path(elem ...string) string {
	return filepath.Join(append([]string{protocolDir}, elem...)...)
}

// Fixture returns the content of protocol/examples/<name>, failing t if it
// cannot be read. name may omit the ".json" suffix.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	if !strings.HasSuffix(name, ".json") {
		name += ".json"
	}
	b, err := os.ReadFile(Path("examples", name))
	if err != nil {
		t.Fatalf("protocoltest: reading fixture: %v", err)
	}
	return b
}

// Fixtures returns every fixture in protocol/examples keyed by file name
// without the ".json" suffix (e.g. "task_started", "poll_events_response").
func Fixtures(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := FixtureNames()
	if err != nil {
		t.Fatalf("protocoltest: listing fixtures: %v", err)
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		out[n] = Fixture(t, n)
	}
	return out
}

// FixtureNames lists the fixtures in protocol/examples (names without
// ".json"), sorted. It returns an error only if the directory is unreadable.
func FixtureNames() ([]string, error) {
	entries, err := os.ReadDir(Path("examples"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// EventFixtureNames lists the fixtures that are single TaskEvent envelopes
// (task_*.json), sorted.
func EventFixtureNames() ([]string, error) {
	names, err := FixtureNames()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, "task_") {
			out = append(out, n)
		}
	}
	return out, nil
}
