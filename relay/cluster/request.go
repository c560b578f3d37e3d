package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"pfschat/relay/server"
)

// unavailable wraps err as server.ErrUnavailable: the write did not happen (or its
// outcome is unknown and a retry with the same client_id is deduplicated).
func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", server.ErrUnavailable, what, err)
}

// apiError is the error part of a JetStream API response.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     uint16 `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("jetstream: %s (%d/%d)", e.Description, e.Code, e.ErrCode)
}

// JetStream API error codes the queue acts on.
const (
	errCodeStoreFailed  = 10077 // e.g. maximum messages per subject exceeded (discard new per subject)
	errCodeWrongLastSeq = 10071 // expected last subject sequence did not match
	// expected last subject sequence not checkable now: at R>1 another write of the
	// subject is in flight (or the subject was written earlier in the same batch)
	errCodeWrongLastSeqInFlight = 10164
	errCodeNoMessage            = 10037 // no message found
	errCodeSequenceGone         = 10057 // bad request / sequence deleted (ignored on delete)
	errCodeSeqNotFound          = 10043 // sequence not found (a delete racing another)
	errCodeMsgNotFound          = 404
	statusNoResults             = "404"
	statusEndOfBatch            = "204"
	headerNumPending            = "Nats-Num-Pending"
	headerStatus                = "Status"
	headerStreamSequence        = "Nats-Sequence"
)

// isAPIErr reports whether err is a JetStream API error with that code.
func isAPIErr(err error, code uint16) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.ErrCode == code
	}
	var je *jetstream.APIError
	if errors.As(err, &je) {
		return uint16(je.ErrorCode) == code
	}
	return false
}

// reply is a message to one of a Conn's reply subjects: idx says which request.
type reply struct {
	idx int
	m   *nats.Msg
}

// respMux routes replies: one subscription on <inbox>.* for the whole connection,
// each request a token of its own (a subscription per request costs a round trip
// and a large channel).
type respMux struct {
	once    sync.Once
	err     error
	prefix  string
	mu      sync.Mutex
	next    uint64
	waiting map[string]muxEntry
}

type muxEntry struct {
	ch  chan reply
	idx int
}

func (c *Conn) muxInit() error {
	c.mux.once.Do(func() {
		c.mux.prefix = c.nc.NewRespInbox() + "."
		c.mux.waiting = map[string]muxEntry{}
		_, c.mux.err = c.nc.Subscribe(c.mux.prefix+"*", func(m *nats.Msg) {
			tok := m.Subject[len(c.mux.prefix):]
			c.mux.mu.Lock()
			e, ok := c.mux.waiting[tok]
			c.mux.mu.Unlock()
			if !ok {
				return // a late reply to a request that gave up
			}
			select {
			case e.ch <- reply{e.idx, m}:
			default: // more than the request said it expects: dropped
			}
		})
		if c.mux.err == nil {
			c.mux.err = c.nc.FlushTimeout(c.timeout)
		}
	})
	return c.mux.err
}

// replySubjects registers n reply subjects feeding ch (which must hold every reply
// expected); done unregisters them.
func (c *Conn) replySubjects(n int, ch chan reply) ([]string, func(), error) {
	if err := c.muxInit(); err != nil {
		return nil, nil, unavailable("reply subscription", err)
	}
	subjs := make([]string, n)
	c.mux.mu.Lock()
	for i := range subjs {
		c.mux.next++
		tok := strconv.FormatUint(c.mux.next, 36)
		c.mux.waiting[tok] = muxEntry{ch, i}
		subjs[i] = c.mux.prefix + tok
	}
	c.mux.mu.Unlock()
	return subjs, func() {
		c.mux.mu.Lock()
		for _, s := range subjs {
			delete(c.mux.waiting, s[len(c.mux.prefix):])
		}
		c.mux.mu.Unlock()
	}, nil
}

// requestAll sends reqs[i] to subjs[i] at once and waits for every reply (bounded by
// ctx and the connection's timeout). A reply that does not come is an error.
func (c *Conn) requestAll(ctx context.Context, subjs []string, reqs [][]byte) ([]*nats.Msg, []error) {
	out := make([]*nats.Msg, len(subjs))
	errs := make([]error, len(subjs))
	if len(subjs) == 0 {
		return out, errs
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ch := make(chan reply, len(subjs))
	replyTo, done, err := c.replySubjects(len(subjs), ch)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return out, errs
	}
	defer done()
	waiting := 0
	for i, s := range subjs {
		if err := c.nc.PublishRequest(s, replyTo[i], reqs[i]); err != nil {
			errs[i] = unavailable("request", err)
			continue
		}
		waiting++
	}
	for waiting > 0 {
		select {
		case r := <-ch:
			if out[r.idx] != nil {
				continue
			}
			out[r.idx] = r.m
			waiting--
		case <-ctx.Done():
			for i := range out {
				if out[i] == nil && errs[i] == nil {
					errs[i] = unavailable("request", ctx.Err())
				}
			}
			return out, errs
		}
	}
	for i, m := range out {
		if m != nil && m.Header.Get(headerStatus) == "503" {
			out[i], errs[i] = nil, unavailable("request", nats.ErrNoResponders)
		}
	}
	return out, errs
}

// apiReply decodes a JSON API reply into v, turning its error part into *apiError.
func apiReply(m *nats.Msg, v any) error {
	var e struct {
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return fmt.Errorf("jetstream: bad API reply: %w", err)
	}
	if e.Error != nil {
		return e.Error
	}
	if v != nil {
		if err := json.Unmarshal(m.Data, v); err != nil {
			return fmt.Errorf("jetstream: bad API reply: %w", err)
		}
	}
	return nil
}
