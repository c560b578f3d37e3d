package relaytest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"pfschat/ratchet"
	"pfschat/relay"
)

// LoadUser is an identity for the load generator: a key and its self-signed card.
type LoadUser struct {
	Name string
	Key  *ratchet.IdentityKey
	Card *ratchet.Card
}

// NewLoadUser makes a fresh identity named name.
func NewLoadUser(name string) (LoadUser, error) {
	k, err := ratchet.GenerateIdentityKey(rand.Reader)
	if err != nil {
		return LoadUser{}, fmt.Errorf("relaytest: identity for %s: %w", name, err)
	}
	card, err := ratchet.NewCard(k, name, "username", "load", time.Now(), nil)
	if err != nil {
		return LoadUser{}, fmt.Errorf("relaytest: card for %s: %w", name, err)
	}
	return LoadUser{Name: name, Key: k, Card: card}, nil
}

// LoadConn is one connection of the relay benchmarks' load generator: a lean client
// that registers and logs in once with a key proof, then writes send and ack frames
// and reads deliveries and answers with as little work and garbage as it can, so that
// the measuring instrument costs little beside the relay it measures. It encodes and
// decodes with package relay's fast codecs, frames and masks its writes itself and
// writes everything queued with one system call. Unlike relay/client it does not
// reconnect, match answers to requests or copy what it reads.
//
// One goroutine may call Next while another queues and flushes frames.
type LoadConn struct {
	ws      *websocket.Conn
	nc      net.Conn
	tcp     net.Conn // under TLS when wss://: where the receive times are read
	hello   relay.Frame
	binding []byte // the channel binding the relay's hello was verified with

	wmu    sync.Mutex // Flush and the pong/close echoes of the read side
	wbuf   []byte     // queued frames, masked; the writing goroutine's
	keys   *mrand.ChaCha8
	nextID uint64 // the writing goroutine's
	ctrl   []byte // control frames written from the read side, under wmu

	rbuf []byte // the reading goroutine's
	body []byte
}

// LoadEvent is one frame Next read. Body (deliver) is valid until the next call.
type LoadEvent struct {
	Type  string // relay.TypeDeliver, relay.TypeAccepted, relay.TypeOK, ...
	ID    uint64 // the request an answer belongs to
	MsgID int64  // deliver and accepted
	Body  []byte // deliver
	Err   *relay.ProtocolError
}

// helloTimeout bounds the wait for the relay's hello after the WebSocket handshake.
const helloTimeout = 10 * time.Second

// DialLoad connects to the relay at url (ws://, or wss:// verified with the system
// roots) and checks its hello: the relay's signature over a fresh nonce, its
// challenge and the channel binding, as relay/client does.
func DialLoad(ctx context.Context, url string) (*LoadConn, error) {
	return DialLoadTLS(ctx, url, nil)
}

// DialLoadTLS is DialLoad with a TLS configuration for wss:// (nil = defaults), for
// example a test CA's RootCAs.
func DialLoadTLS(ctx context.Context, url string, tlsConf *tls.Config) (*LoadConn, error) {
	var tcp net.Conn
	dialer := websocket.Dialer{ReadBufferSize: 4096, WriteBufferSize: 512, HandshakeTimeout: 10 * time.Second, TLSClientConfig: tlsConf,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := DialStamped(ctx, network, addr)
			tcp = c
			return c, err
		}}
	nonce := make([]byte, relay.NonceSize)
	rand.Read(nonce)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	ws, _, err := dialer.DialContext(ctx, url+sep+relay.NonceParam+"="+relay.EncodeNonce(nonce), nil)
	if err != nil {
		return nil, fmt.Errorf("relaytest: dialing %s: %w", url, err)
	}
	var seed [32]byte
	rand.Read(seed[:])
	c := &LoadConn{ws: ws, nc: ws.NetConn(), tcp: tcp, keys: mrand.NewChaCha8(seed)}
	// Every write goes through this connection's own framing, so gorilla's automatic
	// pong and close echo must too.
	ws.SetPingHandler(func(data string) error { return c.writeControl(websocket.PongMessage, []byte(data)) })
	ws.SetCloseHandler(func(code int, _ string) error {
		return c.writeControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""))
	})
	// The hello is waited for at most helloTimeout (or ctx's deadline, if sooner): a
	// relay that accepts the handshake and never says hello must fail the dial, not
	// hang the load run that made it.
	deadline := time.Now().Add(helloTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.nc.SetReadDeadline(deadline)
	data, err := c.read()
	c.nc.SetReadDeadline(time.Time{})
	if err == nil {
		c.hello, err = relay.DecodeServerFrame(data)
	}
	if err == nil && (c.hello.Type != relay.TypeHello || len(c.hello.Challenge) != relay.ChallengeSize) {
		err = errors.New("the first frame is not a hello")
	}
	if err == nil {
		c.binding = make([]byte, relay.BindingSize)
		if tc, ok := c.nc.(*tls.Conn); ok && c.hello.ChannelBinding == relay.BindingTLSExporter {
			cs := tc.ConnectionState()
			c.binding, err = relay.TLSExporter(&cs)
		}
	}
	if err == nil && !relay.VerifyHello(c.hello.RelayKey, nonce, c.hello.Challenge, c.binding, c.hello.Signature) {
		err = errors.New("the relay's hello signature does not verify")
	}
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("relaytest: reading the hello: %w", err)
	}
	return c, nil
}

// Register publishes u's card (on a connection not logged in yet).
func (c *LoadConn) Register(u LoadUser) error {
	f, err := c.request(&relay.Frame{Type: relay.TypeRegister, Card: u.Card.Export()})
	if err == nil && f.Type != relay.TypeCard {
		err = fmt.Errorf("answered %q", f.Type)
	}
	if err != nil {
		return fmt.Errorf("relaytest: registering %s: %w", u.Name, err)
	}
	return nil
}

// Login proves u's identity and returns once the relay has delivered the stored
// backlog (synced); messages in the backlog are dropped.
func (c *LoadConn) Login(u LoadUser) error {
	sig := u.Key.Sign(relay.LoginDomain, relay.LoginMessage(c.hello.RelayKey, c.hello.Challenge, c.binding))
	if _, err := c.request(&relay.Frame{Type: relay.TypeLogin, CardID: u.Card.ID(), Signature: sig}); err != nil {
		return fmt.Errorf("relaytest: logging in as %s: %w", u.Name, err)
	}
	for {
		ev, err := c.Next()
		if err != nil {
			return fmt.Errorf("relaytest: waiting for %s's backlog: %w", u.Name, err)
		}
		if ev.Type == relay.TypeSynced {
			return nil
		}
	}
}

// request writes f with a fresh id and reads frames until its answer.
func (c *LoadConn) request(f *relay.Frame) (relay.Frame, error) {
	c.nextID++
	f.ID = c.nextID
	c.queue(relay.EncodeFrame(f))
	if err := c.Flush(); err != nil {
		return relay.Frame{}, err
	}
	for {
		data, err := c.read()
		if err != nil {
			return relay.Frame{}, err
		}
		resp, err := relay.DecodeServerFrame(data)
		if err != nil || resp.ID != f.ID {
			continue
		}
		if resp.Type == relay.TypeError {
			return resp, &relay.ProtocolError{Code: resp.Code, Message: resp.Message, Limit: resp.Limit}
		}
		return resp, nil
	}
}

// QueueSend queues a send frame; Flush writes it.
func (c *LoadConn) QueueSend(to string, body []byte, clientID string) {
	c.nextID++
	f := relay.Frame{Type: relay.TypeSend, ID: c.nextID, To: to, Body: body, ClientID: clientID}
	b, start := beginFrame(c.wbuf)
	c.wbuf = c.endFrame(relay.AppendSend(b, &f), start, websocket.TextMessage)
}

// QueueAck queues an ack frame for ids (at most relay.MaxAckIDs); Flush writes it. To a
// relay whose hello announced quiet_acks it is a quiet ack, as pfschat's receiver
// sends while it streams (no ok comes back); to any other, an ack with an id.
func (c *LoadConn) QueueAck(ids []int64) {
	c.queueAck(ids, c.hello.Limits == nil || !c.hello.Limits.QuietAcks)
}

// QueueAckAnswered queues an ack with an id, which the relay answers ok once the
// deletion is committed.
func (c *LoadConn) QueueAckAnswered(ids []int64) { c.queueAck(ids, true) }

func (c *LoadConn) queueAck(ids []int64, answered bool) {
	var id uint64
	if answered {
		c.nextID++
		id = c.nextID
	}
	b, start := beginFrame(c.wbuf)
	c.wbuf = c.endFrame(relay.AppendAck(b, id, ids), start, websocket.TextMessage)
}

// Queued is how many bytes wait for Flush.
func (c *LoadConn) Queued() int { return len(c.wbuf) }

func (c *LoadConn) queue(payload []byte) {
	b, start := beginFrame(c.wbuf)
	c.wbuf = c.endFrame(append(b, payload...), start, websocket.TextMessage)
}

// Flush writes every queued frame with one system call.
func (c *LoadConn) Flush() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	c.wmu.Lock()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(c.wbuf)
	c.wmu.Unlock()
	c.wbuf = c.wbuf[:0]
	return err
}

func (c *LoadConn) writeControl(opcode int, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, start := beginFrame(c.ctrl[:0])
	c.ctrl = c.endFrame(append(b, payload...), start, opcode)
	// As long as Flush's: with 10,000 connections in one process on a busy machine a
	// goroutine can wait over a second for a CPU between setting it and writing.
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(c.ctrl)
	return err
}

// maxHeader is the longest masked frame header: opcode, length, mask key.
const maxHeader = 2 + 8 + 4

// beginFrame leaves room for the longest header; the caller appends the payload and
// calls endFrame, which moves the payload up behind the header it actually needs and
// masks it (RFC 6455 §5.3). Frames are thus encoded straight into the write buffer.
func beginFrame(b []byte) ([]byte, int) {
	start := len(b)
	return append(b, make([]byte, maxHeader)...), start
}

func (c *LoadConn) endFrame(b []byte, start int, opcode int) []byte {
	n := len(b) - start - maxHeader
	hdr := b[start:start]
	hdr = append(hdr, 0x80|byte(opcode))
	switch {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], uint32(c.keys.Uint64()))
	hdr = append(hdr, key[:]...)
	p := b[start+len(hdr) : start+len(hdr)+n]
	copy(p, b[start+maxHeader:])
	for i := range p {
		p[i] ^= key[i&3]
	}
	return b[:start+len(hdr)+n]
}

// Next reads the next frame. Deliveries and the answers to sends and acks are
// decoded without allocating.
func (c *LoadConn) Next() (LoadEvent, error) {
	data, err := c.read()
	if err != nil {
		return LoadEvent{}, err
	}
	if d, ok := relay.DecodeDeliverInto(data, c.body); ok {
		c.body = d.Body
		return LoadEvent{Type: relay.TypeDeliver, MsgID: d.MsgID, Body: d.Body}, nil
	}
	f, err := relay.DecodeServerFrame(data)
	if err != nil {
		return LoadEvent{}, fmt.Errorf("relaytest: undecodable frame from the relay: %w", err)
	}
	ev := LoadEvent{Type: f.Type, ID: f.ID, MsgID: f.MsgID}
	if f.Type == relay.TypeError {
		ev.Err = &relay.ProtocolError{Code: f.Code, Message: f.Message, Limit: f.Limit}
	}
	return ev, nil
}

// Arrived is the kernel's receive time of the last bytes Next read (see Arrival): for a
// deliver, when its frame had arrived, however long this process then took to read
// it. The zero time where the platform gives none.
func (c *LoadConn) Arrived() time.Time { return Arrival(c.tcp) }

// read reads one message into the connection's reused buffer.
func (c *LoadConn) read() ([]byte, error) {
	_, r, err := c.ws.NextReader()
	if err != nil {
		return nil, err
	}
	buf := c.rbuf[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) > relay.MaxServerFrameSize {
				return nil, errors.New("relaytest: frame from the relay over the size limit")
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			c.rbuf = buf
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Close closes the connection.
func (c *LoadConn) Close() error { return c.ws.Close() }
