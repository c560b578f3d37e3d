package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

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
	errCodeStoreFailed   = 10077 // e.g. maximum messages per subject exceeded (discard new per subject)
	errCodeWrongLastSeq  = 10071 // expected last subject sequence did not match
	errCodeNoMessage     = 10037 // no message found
	errCodeSequenceGone  = 10057 // bad request / sequence deleted (ignored on delete)
	errCodeMsgNotFound   = 404
	statusNoResults      = "404"
	statusEndOfBatch     = "204"
	headerNumPending     = "Nats-Num-Pending"
	headerStatus         = "Status"
	headerStreamSequence = "Nats-Sequence"
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
	inbox := c.nc.NewRespInbox()
	ch := make(chan *nats.Msg, len(subjs))
	sub, err := c.nc.ChanSubscribe(inbox+".*", ch)
	if err != nil {
		for i := range errs {
			errs[i] = unavailable("subscribe", err)
		}
		return out, errs
	}
	defer sub.Unsubscribe()
	waiting := 0
	for i, s := range subjs {
		if err := c.nc.PublishRequest(s, inbox+"."+strconv.Itoa(i), reqs[i]); err != nil {
			errs[i] = unavailable("request", err)
			continue
		}
		waiting++
	}
	for waiting > 0 {
		select {
		case m := <-ch:
			i, err := strconv.Atoi(m.Subject[len(inbox)+1:])
			if err != nil || i < 0 || i >= len(out) || out[i] != nil {
				continue
			}
			out[i] = m
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
