package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/httpx"
)

// maxIDBytes bounds client-chosen identifiers (clientRequestId, taskType,
// clientActionId, suspendId, actionType), as the service does.
const maxIDBytes = 255

// statusError is an error with an HTTP status and protocol code chosen by
// this package, for the few cases [taskbridge.HTTPError] has no mapping for
// (413 for JSON bodies, 404 and 405 for routing).
type statusError struct {
	status  int
	code    string
	msg     string
	details map[string]any
}

func (e *statusError) Error() string { return "httpapi: " + e.msg }

func invalidRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", taskbridge.ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// readJSONBody reads r's body, at most Config.MaxJSONBytes of it. A longer
// body fails with 413. A non-empty body must not be declared as anything
// but JSON: a missing Content-Type is accepted, but text/plain or form
// types are 400.
func (h *Handler) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := h.readBody(w, r)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return b, err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || !isJSONMediaType(mt) {
			return nil, &statusError{
				status: http.StatusBadRequest, code: taskbridge.CodeInvalidRequest,
				msg: "Content-Type must be application/json",
			}
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			// JSON is UTF-8 (RFC 8259); a body declared otherwise would be
			// read as something its sender did not mean.
			return nil, &statusError{
				status: http.StatusBadRequest, code: taskbridge.CodeInvalidRequest,
				msg: "JSON bodies must be UTF-8: charset " + truncate(cs, 32) + " is not supported",
			}
		}
	}
	return b, nil
}

// readJSONObject reads a body that must be one JSON object.
func (h *Handler) readJSONObject(w http.ResponseWriter, r *http.Request) (jsonObject, error) {
	body, err := h.readJSONBody(w, r)
	if err != nil {
		return nil, err
	}
	return decodeJSONObject(body)
}

// readBody reads r's body, at most Config.MaxJSONBytes of it (within
// Config.BodyReadTimeout, see [Handler.authed]). A longer body fails with
// 413, a slower one with 408.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.cfg.MaxJSONBytes
	tooLarge := &statusError{
		status: http.StatusRequestEntityTooLarge, code: taskbridge.CodeInvalidRequest,
		msg:     "Request body exceeds " + strconv.FormatInt(limit, 10) + " bytes",
		details: map[string]any{"limitBytes": limit},
	}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	if r.Body == nil || r.ContentLength == 0 {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		if err := h.bodies.cutOff(err, taskbridge.CodeInvalidRequest, h.cfg.BodyReadTimeout); err != nil {
			return nil, err
		}
		return nil, invalidRequest("reading the request body failed")
	}
	bodyOf(r).complete()
	return b, nil
}

// jsonObject is a decoded JSON object whose members are checked one by one.
type jsonObject map[string]json.RawMessage

// decodeJSONObject parses body, which must be exactly one JSON object:
// malformed JSON, trailing data and other top-level types are 400
// INVALID_REQUEST.
func decodeJSONObject(body []byte) (jsonObject, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, invalidRequest("request body is empty; expected a JSON object")
	}
	if !json.Valid(body) {
		return nil, invalidRequest("request body is not valid JSON")
	}
	if body[0] != '{' {
		return nil, invalidRequest("request body must be a JSON object")
	}
	if err := checkDuplicates(body); err != nil {
		return nil, err
	}
	var obj jsonObject
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, invalidRequest("request body is not valid JSON")
	}
	return obj, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// requiredID reads a required, non-blank string member of at most
// maxIDBytes.
func (o jsonObject) requiredID(verr *taskbridge.ValidationError, name string) string {
	raw, ok := o[name]
	if !ok || isNull(raw) {
		verr.Add(name, "is required")
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		verr.Add(name, "must be a string")
		return ""
	}
	if !exactJSONString(raw) {
		// Decoding put U+FFFD in place of what is not text, so that
		// different ids would become the same one.
		verr.Add(name, notUTF8)
		return ""
	}
	checkID(verr, name, s)
	return s
}

// notUTF8 is the field error of an id that is not UTF-8 text, over JSON and
// multipart alike.
const notUTF8 = "must be UTF-8 text"

// exactJSONString reports whether raw, a well-formed JSON string literal,
// decodes without replacement characters: its bytes are UTF-8 and every
// \u escape of a UTF-16 surrogate is half of a valid pair.
func exactJSONString(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if raw[i] != 'u' {
			continue
		}
		r := hexRune(raw[i+1 : i+5])
		i += 4
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xDC00 { // a low surrogate without its high one
			return false
		}
		if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
			return false
		}
		if lo := hexRune(raw[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
			return false
		}
		i += 6
	}
	return true
}

// hexRune decodes the four hex digits of a \u escape.
func hexRune(b []byte) rune {
	n, err := strconv.ParseUint(string(b), 16, 32)
	if err != nil {
		return utf8.RuneError
	}
	return rune(n)
}

// noControl is the field error of an id with a control character, as the
// service words it.
const noControl = "must not contain control characters"

// checkID validates a required identifier's value.
func checkID(verr *taskbridge.ValidationError, name, s string) {
	switch {
	case strings.TrimSpace(s) == "":
		verr.Add(name, "must not be empty")
	case len(s) > maxIDBytes:
		verr.Add(name, "must be at most %d bytes", maxIDBytes)
	case strings.ContainsFunc(s, unicode.IsControl):
		verr.Add(name, noControl)
	}
}

// optionalString reads an optional string member; null counts as absent.
func (o jsonObject) optionalString(verr *taskbridge.ValidationError, name string) string {
	raw, ok := o[name]
	if !ok || isNull(raw) {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		verr.Add(name, "must be a string")
	}
	return s
}

// optionalObject reads an optional JSON object member; null counts as
// absent and gives nil.
func (o jsonObject) optionalObject(verr *taskbridge.ValidationError, name string) json.RawMessage {
	raw, ok := o[name]
	if !ok || isNull(raw) {
		return nil
	}
	if raw[0] != '{' {
		verr.Add(name, "must be a JSON object")
		return nil
	}
	return raw
}

// rejectUnknown reports every member not in known, in name order.
func (o jsonObject) rejectUnknown(verr *taskbridge.ValidationError, known ...string) {
	var unknown []string
	for name := range o {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		verr.Add(name, "is not allowed")
	}
}

// checkDuplicates fails with a field error (422) when valid JSON data has
// an object member twice: encoding/json would keep the last one silently.
func checkDuplicates(data []byte) error {
	if p := httpx.DuplicateMember(data); p != "" {
		return &taskbridge.ValidationError{Fields: []taskbridge.FieldError{{Field: truncate(p, 128), Message: "must be given once"}}}
	}
	return nil
}

// jsonObjectText parses a multipart text part that must hold a JSON object.
// Empty text counts as absent. Text that is not JSON at all is 400
// INVALID_REQUEST, like a malformed JSON body; JSON of another type is a
// field error.
func jsonObjectText(verr *taskbridge.ValidationError, name string, text []byte) (json.RawMessage, error) {
	text = bytes.TrimSpace(text)
	if len(text) == 0 {
		return nil, nil
	}
	if !json.Valid(text) {
		return nil, invalidRequest("part %q is not valid JSON", name)
	}
	if text[0] != '{' {
		verr.Add(name, "must be a JSON object")
		return nil, nil
	}
	if p := httpx.DuplicateMember(text); p != "" {
		verr.Add(truncate(name+"."+p, 128), "must be given once")
		return nil, nil
	}
	return json.RawMessage(text), nil
}

// textField validates a multipart text part as a required identifier.
func textField(verr *taskbridge.ValidationError, name string, vals [][]byte) string {
	switch len(vals) {
	case 0:
		verr.Add(name, "is required")
		return ""
	case 1:
	default:
		verr.Add(name, "must be given once")
		return ""
	}
	if !utf8.Valid(vals[0]) {
		verr.Add(name, notUTF8)
		return ""
	}
	s := string(vals[0])
	checkID(verr, name, s)
	return s
}
