package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/wsframe"
)

// The stream clients speak the wire protocol directly on a TCP connection
// and parse frames in place from one read buffer, so that the client spends
// as little CPU per delivered event as possible: it shares the machine with
// the server under test.

// Transports.
const (
	transportSSE = "sse"
	transportWS  = "ws"
)

// protocol is the server's wire protocol.
type protocol uint8

const (
	// protoTaskbridge is TaskBridge v1 (also spoken by the baseline).
	protoTaskbridge protocol = iota
	// protoCentrifugo is Centrifugo's unidirectional JSON protocol, with
	// the benchmark's event JSON as publication data. Its streams do not
	// end after a terminal event: the client ends them.
	protoCentrifugo
)

// msgKind classifies what a stream delivered.
type msgKind uint8

const (
	msgOther     msgKind = iota // a comment, the WebSocket confirmation
	msgEvent                    // a task event (it has an event id)
	msgHeartbeat                // a heartbeat frame
)

// message is one frame read from a stream.
type message struct {
	kind     msgKind
	seq      int64 // event id of an event
	sent     int64 // publish time (Unix ns) carried by the event; 0 if none
	recv     int64 // when the client read the bytes holding it (Unix ns)
	terminal bool  // a terminal event
}

// stream is one subscriber connection.
type stream interface {
	// next returns the next frame; io.EOF at a clean end of the stream
	// (SSE: the server closed the response; WebSocket: close 1000).
	next() (message, error)
	close() error
}

// timedConn records when the last read returned data: every frame parsed
// from that data was received by then.
type timedConn struct {
	net.Conn
	last int64
}

func (c *timedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last = time.Now().UnixNano()
	}
	return n, err
}

// handshakeTimeout bounds connecting and subscribing.
const handshakeTimeout = 30 * time.Second

// dialStream connects to addr and subscribes to taskID after event
// startedSeq, over SSE or WebSocket, reading through a buffer of bufSize
// bytes. It returns once the subscription is established: SSE response
// headers, or the WebSocket SUBSCRIPTION_CONFIRMED frame (Centrifugo: its
// connect reply).
func dialStream(ctx context.Context, proto protocol, transport, addr, taskID string, bufSize int) (stream, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &timedConn{Conn: nc}
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReaderSize(c, bufSize)
	var s stream
	switch transport {
	case transportSSE:
		s, err = subscribeSSE(c, br, proto, addr, taskID)
	case transportWS:
		s, err = subscribeWS(c, br, proto, addr, taskID)
	default:
		err = fmt.Errorf("unknown transport %q", transport)
	}
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return s, nil
}

// sseStream reads Server-Sent Events.
type sseStream struct {
	c     *timedConn
	r     *bufio.Reader
	ender // Centrifugo: ends the stream after a terminal event
}

func subscribeSSE(c *timedConn, br *bufio.Reader, proto protocol, addr, taskID string) (stream, error) {
	var err error
	if proto == protoCentrifugo {
		_, err = fmt.Fprintf(c, "GET /connection/uni_sse?cf_connect=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n",
			url.QueryEscape(centrifugoConnect(taskID)), addr)
	} else {
		_, err = fmt.Fprintf(c, "GET /api/v1/tasks/%s/events/stream HTTP/1.1\r\nHost: %s\r\n"+
			"Authorization: Bearer %s\r\nAccept: text/event-stream\r\nLast-Event-ID: %d\r\n\r\n",
			taskID, addr, benchSubject, startedSeq)
	}
	if err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return nil, fmt.Errorf("stream Content-Type %q", ct)
	}
	r := br
	if len(resp.TransferEncoding) > 0 || resp.ContentLength >= 0 {
		// A chunked (or sized) body: let net/http decode it. A body
		// delimited by the connection's end is read in place.
		r = bufio.NewReaderSize(resp.Body, br.Size())
	}
	s := &sseStream{c: c, r: r, ender: ender{on: proto == protoCentrifugo}}
	if proto == protoCentrifugo {
		if err := expectConnected(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// expectConnected reads the first message, which must confirm the
// subscription.
func expectConnected(s stream) error {
	m, err := s.next()
	if err != nil {
		return fmt.Errorf("waiting for the subscription: %w", err)
	}
	if m.kind != msgOther {
		return errors.New("the first message does not confirm the subscription")
	}
	return nil
}

// ender makes a stream end after its terminal event, for servers that keep
// streams open.
type ender struct {
	on, ended bool
}

// check returns io.EOF once a terminal event was returned, and notes one
// in m.
func (e *ender) check(m message, err error) (message, error) {
	if e.on {
		if e.ended {
			return message{}, io.EOF
		}
		e.ended = err == nil && m.terminal
	}
	return m, err
}

func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(b))
}

func (s *sseStream) close() error { return s.c.Close() }

func (s *sseStream) next() (message, error) {
	if s.ended {
		return message{}, io.EOF
	}
	return s.check(s.read())
}

func (s *sseStream) read() (message, error) {
	var m message
	started, hasID := false, false
	for {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				if !started && len(line) == 0 {
					return m, io.EOF
				}
				err = io.ErrUnexpectedEOF
			}
			return m, fmt.Errorf("reading SSE frame: %w", err)
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		switch {
		case len(line) == 0:
			if !started {
				continue
			}
			m.recv = s.c.last
			if hasID {
				m.kind = msgEvent
			}
			return m, nil
		case line[0] == ':':
			// A comment.
		case bytes.HasPrefix(line, []byte("id: ")):
			if m.seq, err = strconv.ParseInt(string(line[4:]), 10, 64); err != nil {
				return m, fmt.Errorf("bad SSE id %q", line)
			}
			hasID = true
		case bytes.HasPrefix(line, []byte("data: ")):
			if err := classify(line[6:], &m); err != nil {
				return m, err
			}
			hasID = hasID || m.kind == msgEvent
		default:
			return m, fmt.Errorf("unexpected SSE line %q", line)
		}
		started = true
	}
}

// wsStream reads WebSocket frames (RFC 6455) sent by the server.
type wsStream struct {
	c     *timedConn
	r     *bufio.Reader
	ender           // Centrifugo: ends the stream after a terminal event
	size  int       // payload size of the current frame
	queue []message // further messages of the current frame (Centrifugo)
	// onPong, when set, is called for each pong.
	onPong func()
}

// split queues the newline-separated messages in rest.
func (s *wsStream) split(rest []byte, recv int64) error {
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		m := message{recv: recv}
		if err := classify(line, &m); err != nil {
			return err
		}
		s.queue = append(s.queue, m)
	}
	return nil
}

// wsGUID is the key suffix of RFC 6455's Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// WebSocket opcodes.
const (
	opText  = 1
	opClose = 8
	opPing  = 9
	opPong  = 10
)

func subscribeWS(c *timedConn, br *bufio.Reader, proto protocol, addr, taskID string) (stream, error) {
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	path := "/api/v1/tasks/ws"
	sub, _ := json.Marshal(map[string]string{"action": "subscribe", "taskId": taskID, "lastEventId": strconv.Itoa(startedSeq)})
	if proto == protoCentrifugo {
		path, sub = "/connection/uni_websocket", []byte(centrifugoConnect(taskID))
	}
	req := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nAuthorization: Bearer %s\r\n\r\n", path, addr, k, benchSubject)
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, statusError(resp)
	}
	sum := sha1.Sum([]byte(k + wsGUID))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, errors.New("bad Sec-WebSocket-Accept")
	}
	if _, err := c.Write(wsframe.AppendClientFrame(nil, opText, sub)); err != nil {
		return nil, err
	}
	s := &wsStream{c: c, r: br, ender: ender{on: proto == protoCentrifugo}}
	if err := expectConnected(s); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *wsStream) close() error { return s.c.Close() }

func (s *wsStream) next() (message, error) {
	if s.ended {
		return message{}, io.EOF
	}
	return s.check(s.read())
}

func (s *wsStream) read() (message, error) {
	if len(s.queue) > 0 {
		m := s.queue[0]
		s.queue = s.queue[1:]
		return m, nil
	}
	for {
		op, payload, err := s.frame()
		if err != nil {
			return message{}, err
		}
		switch op {
		case opText:
			m := message{recv: s.c.last}
			if s.on {
				// Centrifugo may join messages into one frame, one per line.
				var rest []byte
				payload, rest, _ = bytes.Cut(payload, []byte{'\n'})
				err = s.split(rest, m.recv)
			}
			if err == nil {
				err = classify(payload, &m)
			}
			if _, derr := s.r.Discard(s.size); err == nil {
				err = derr
			}
			return m, err
		case opClose:
			code := 1005
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			if code == 1000 {
				return message{}, io.EOF
			}
			return message{}, fmt.Errorf("WebSocket closed with %d %q", code, payload[min(2, len(payload)):])
		case opPing:
			pong := wsframe.AppendClientFrame(nil, opPong, payload)
			if _, err := s.r.Discard(s.size); err != nil {
				return message{}, err
			}
			if _, err := s.c.Write(pong); err != nil {
				return message{}, err
			}
		case opPong:
			if _, err := s.r.Discard(s.size); err != nil {
				return message{}, err
			}
			if s.onPong != nil {
				s.onPong()
			}
		default:
			return message{}, fmt.Errorf("unexpected WebSocket opcode %d", op)
		}
	}
}

// frame reads the header of the next server frame and returns its opcode
// and payload, which stays in the read buffer until the caller discards
// s.size bytes.
func (s *wsStream) frame() (op byte, payload []byte, err error) {
	h, err := s.r.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // a WebSocket ends with a close frame
		}
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		return 0, nil, errors.New("fragmented or masked server frame")
	}
	op = h[0] & 0x0f
	n, hl := uint64(h[1]&0x7f), 2
	switch n {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	if hl > 2 {
		if h, err = s.r.Peek(hl); err != nil {
			return 0, nil, err
		}
		if hl == 4 {
			n = uint64(binary.BigEndian.Uint16(h[2:]))
		} else {
			n = binary.BigEndian.Uint64(h[2:])
		}
	}
	if n > uint64(s.r.Size()-hl) {
		return 0, nil, fmt.Errorf("server frame of %d bytes exceeds the read buffer", n)
	}
	if _, err = s.r.Discard(hl); err != nil {
		return 0, nil, err
	}
	s.size = int(n)
	payload, err = s.r.Peek(s.size)
	return op, payload, err
}

// classify parses a message's JSON (an SSE data line or a WebSocket text
// message) into m: a task event, a heartbeat or anything else. The event
// JSON is found by its fields, so it may be wrapped in Centrifugo's
// publication envelope; its values need no unescaping. An SSE id line, if
// any, sets m.seq itself.
func classify(data []byte, m *message) error {
	typ := jsonString(data, `"type":"`)
	switch {
	case string(typ) == "HEARTBEAT" || string(data) == "{}": // Centrifugo pings with {}
		m.kind = msgHeartbeat
		return nil
	case typ == nil || string(typ) == "SUBSCRIPTION_CONFIRMED":
		m.kind = msgOther
		return nil
	}
	m.kind = msgEvent
	if m.seq == 0 {
		id := jsonString(data, `"eventId":"`)
		var err error
		if m.seq, err = strconv.ParseInt(string(id), 10, 64); err != nil {
			return fmt.Errorf("bad eventId in %.100q", data)
		}
	}
	m.terminal = isTerminal(typ)
	if ts := jsonString(data, `"message":"`); len(ts) > 0 {
		m.sent, _ = strconv.ParseInt(string(ts), 10, 64)
	}
	return nil
}

// jsonString returns the characters after the first key in data up to the
// next quote, or nil.
func jsonString(data []byte, key string) []byte {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return nil
	}
	v := data[i+len(key):]
	if j := bytes.IndexByte(v, '"'); j >= 0 {
		return v[:j]
	}
	return nil
}

func isTerminal(typ []byte) bool {
	switch string(typ) {
	case "TASK_COMPLETED", "TASK_FAILED", "TASK_CANCELLED":
		return true
	}
	return false
}
