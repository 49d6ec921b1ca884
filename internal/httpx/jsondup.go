package httpx

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// DuplicateMember returns the path ("a", "a.b", "a[2].c") of the first
// object member that appears twice in its object, anywhere in data, or ""
// when there is none. encoding/json keeps the last of duplicate members,
// so a body with one would mean different things to different parsers.
// data must be valid JSON (json.Valid); otherwise the result is "".
func DuplicateMember(data []byte) string {
	if bytes.IndexByte(data, '{') < 0 {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	path, _ := dupValue(dec, "")
	return path
}

// dupValue reads one value from dec; it returns the path of a duplicate
// member inside it, or "" and whether the value was read cleanly.
func dupValue(dec *json.Decoder, at string) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]struct{}{}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return "", false
			}
			name, _ := key.(string)
			member := name
			if at != "" {
				member = at + "." + name
			}
			if _, dup := seen[name]; dup {
				return member, true
			}
			seen[name] = struct{}{}
			if p, ok := dupValue(dec, member); p != "" || !ok {
				return p, ok
			}
		}
		_, err = dec.Token() // '}'
		return "", err == nil
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if p, ok := dupValue(dec, at+"["+strconv.Itoa(i)+"]"); p != "" || !ok {
				return p, ok
			}
		}
		_, err = dec.Token() // ']'
		return "", err == nil
	}
	return "", true
}
