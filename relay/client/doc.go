// Package client is a connection to a pfschat relay, as chat/ uses it: it dials,
// checks that the relay proves it holds the pinned key on this very connection, logs
// in by key proof bound to the channel, makes requests and receives pushes, and keeps
// the connection up with backoff.
//
//	c := client.New(client.Config{URL: url, Identity: key, Card: card, PinnedRelayKey: pinned})
//	go c.Run(ctx)                      // connect, log in, reconnect with backoff
//	p, err := c.Pushes().Wait(ctx)     // the next push; ack a message after committing it
//	id, err := c.Send(ctx, "bob", ciphertext, clientID)
//
// Every connection sends a fresh nonce in its URL and reads the relay's hello, which
// must carry the relay key's signature over that nonce, the relay's challenge and the
// channel binding (over wss:// the TLS 1.3 exporter); only then does the client send
// anything (PROTOCOL.md, "Connection start"). A relay that names another key than the
// pinned one fails with ErrRelayKeyMismatch, one that cannot prove its key with
// ErrRelayProof; Run does not retry either. Plain ws:// is refused before dialling
// unless the host is loopback (CheckURL) or Config.InsecureWS is set. TLS is
// verified against the system roots or Config.RootCAs.
//
// Methods fail fast with ErrNotConnected while the connection is down (chat/ keeps an
// outbox and resends on reconnect; resending with the same client ID is safe). Error
// frames from the relay come back as *relay.ProtocolError with a Code.
//
// Every frame the client sends waits for the relay's frame rate, which the relay
// announces in its hello: requests never bounce off the limit with rate_limited (see
// pace.go for the margin it keeps). Pushes queue up in a fifo.Queue without bound, so
// the reader never waits for a slow consumer and answers keep arriving.
//
// A client is one connection per program, so it does without hot-path tricks: it
// writes with gorilla/websocket's ordinary writer under a mutex, encodes with
// encoding/json and pools nothing (see the rule in package relay's documentation).
package client
