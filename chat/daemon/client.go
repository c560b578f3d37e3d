package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"sync"
	"time"

	"pfschat/relay/fifo"
	"pfschat/relay/strictjson"
)

// ErrNoOwner: nothing answers on the profile's socket (no owner runs, or one crashed
// and left its socket file behind).
var ErrNoOwner = errors.New("daemon: no pfschat owner serves this profile")

// Client is a connection to an owner's socket. Its methods are safe for concurrent use;
// notifications (after Call("subscribe", ...)) arrive on Notifications.
type Client struct {
	nc      net.Conn
	wmu     sync.Mutex
	mu      sync.Mutex
	next    int64
	pending map[string]chan Response
	notes   *fifo.Queue[Notification]
	done    chan struct{}
	err     error
}

// Dial connects to the socket at path. ErrNoOwner (wrapped) when nobody listens there.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoOwner, err)
	}
	c := &Client{nc: nc, pending: make(map[string]chan Response), notes: fifo.New[Notification](), done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	defer c.notes.Close()
	sc := bufio.NewScanner(c.nc)
	sc.Buffer(make([]byte, 0, 4096), 4*MaxRequestBytes)
	for sc.Scan() {
		var probe struct {
			Method *string         `json:"method"`
			ID     json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &probe); err != nil {
			c.fail(fmt.Errorf("daemon: the owner sent a line that is not JSON: %w", err))
			return
		}
		if probe.Method != nil {
			var n Notification
			if err := unmarshalExact(sc.Bytes(), &n); err != nil {
				c.fail(fmt.Errorf("daemon: bad notification: %w", err))
				return
			}
			// Its params are held to the same rule before anyone reads them: a
			// notification the client refuses ends the connection, as a response does.
			if _, err := n.Event(); err != nil {
				c.fail(err)
				return
			}
			c.notes.Push(n)
			continue
		}
		var r Response
		if err := unmarshalExact(sc.Bytes(), &r); err != nil {
			c.fail(fmt.Errorf("daemon: bad response: %w", err))
			return
		}
		c.mu.Lock()
		ch, ok := c.pending[string(r.ID)]
		delete(c.pending, string(r.ID))
		c.mu.Unlock()
		if ok {
			ch <- r
		}
	}
	err := sc.Err()
	if err == nil {
		err = errors.New("daemon: the owner closed the connection")
	}
	c.fail(err)
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.nc.Close()
}

// Err is why the connection ended (nil while it is up).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Call sends one request and decodes its result into result (nil to ignore it). A
// refusal by the owner is an *Error.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	c.mu.Lock()
	c.next++
	id := strconv.FormatInt(c.next, 10)
	ch := make(chan Response, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	req := struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
		ID      int64  `json:"id"`
	}{Version, method, params, c.next}
	req.ID, _ = strconv.ParseInt(id, 10, 64)
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.nc.Write(append(b, '\n'))
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("daemon: sending %s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return r.Error
		}
		if result != nil {
			if err := unmarshalExact(r.Result, result); err != nil {
				return fmt.Errorf("daemon: decoding the result of %s: %w", method, err)
			}
		}
		return nil
	case <-c.done:
		return fmt.Errorf("daemon: %s: %w", method, c.Err())
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Next returns the next notification, waiting for one; it fails once the connection
// has ended and every notification was taken, or when ctx is done. Its Event decodes:
// the client ends the connection at a notification whose params it refuses (Err is
// then a *NotificationError).
func (c *Client) Next(ctx context.Context) (Notification, error) {
	n, err := c.notes.Wait(ctx)
	if errors.Is(err, fifo.ErrClosed) {
		return n, fmt.Errorf("daemon: %w", c.Err())
	}
	return n, err
}

// Close ends the connection.
func (c *Client) Close() error {
	err := c.nc.Close()
	<-c.done
	return err
}

// unmarshalExact decodes what the owner sent by the rule it holds requests to: member
// names exact and each once (members it does not know are let through: a newer owner
// may add some).
func unmarshalExact(b []byte, v any) error {
	if err := strictjson.CheckKeys(b, reflect.TypeOf(v)); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// NotificationError is a notification from the owner whose params the client refuses
// (Notification.Event).
type NotificationError struct {
	Method string // the notification's method, as the owner sent it
	Err    error  // why: a *strictjson.KeyError, a JSON type error, a member missing
}

func (e *NotificationError) Error() string {
	return fmt.Sprintf("daemon: the owner sent a %q notification the client cannot read: %v", truncateMethod(e.Method), e.Err)
}

func (e *NotificationError) Unwrap() error { return e.Err }

// truncateMethod bounds what an error quotes of a method name the owner sent.
func truncateMethod(m string) string {
	const max = 64
	if len(m) <= max {
		return m
	}
	cut := max
	for cut > 0 && m[cut]&0xC0 == 0x80 {
		cut--
	}
	return m[:cut] + "…"
}

// Event decodes n's params by the rule the client reads the owner's responses by: an
// object whose member names are exact and appear once, nested objects included, each
// value of its member's type (members it does not know are let through: a newer owner
// may add some), with the subscription it belongs to and, for the methods this version
// knows, the member the method carries: "message" (message, delivery), "contact"
// (keyChanged, contact, markedRead, deleted), "status" (connection), "transfer" (transfer). A refusal is a
// *NotificationError naming the method; Event never panics.
func (n Notification) Event() (Event, error) {
	refuse := func(err error) (Event, error) {
		return Event{}, &NotificationError{Method: n.Method, Err: err}
	}
	params := bytes.TrimSpace(n.Params)
	if len(params) == 0 || params[0] != '{' {
		return refuse(errors.New(`"params" is not an object`))
	}
	var ev Event
	if err := unmarshalExact(params, &ev); err != nil {
		return refuse(err)
	}
	if ev.Subscription <= 0 {
		return refuse(fmt.Errorf(`member "subscription" is missing or not a subscription (%d)`, ev.Subscription))
	}
	missing := ""
	switch {
	case (n.Method == NotifyMessage || n.Method == NotifyDelivery) && ev.Message == nil:
		missing = "message"
	case (n.Method == NotifyKeyChanged || n.Method == NotifyContact || n.Method == NotifyMarkedRead || n.Method == NotifyDeleted) && ev.Contact == "":
		missing = "contact"
	case n.Method == NotifyConnection && ev.Status == "":
		missing = "status"
	case n.Method == NotifyTransfer && ev.Transfer == nil:
		missing = "transfer"
	}
	if missing != "" {
		return refuse(fmt.Errorf("member %q is missing", missing))
	}
	return ev, nil
}
