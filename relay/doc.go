// Package relay is the wire between pfschat clients: a WebSocket server (the relay)
// that approves and publishes cards, authenticates clients by key proof, hands out
// prekeys and stores-and-forwards ciphertext, and the Client that chat/ uses to talk
// to it. The relay never sees a plaintext. The protocol is specified in PROTOCOL.md.
//
// Running a relay in-process (tests, `pfschat demo`):
//
//	store, _ := storage.OpenRelay(ctx, path, storage.RelayOptions{})
//	srv, _ := relay.NewServer(ctx, relay.ServerConfig{Store: store, Logger: log})
//	http.ListenAndServe(addr, srv) // serves /v1/ws, /healthz, /metrics
//	...
//	srv.Shutdown(ctx) // drains: every send already read is committed and answered
//	store.Close()
//
// Tests use relay/relaytest, which does the above on a temporary database.
//
// Talking to a relay:
//
//	c := relay.NewClient(relay.ClientConfig{URL: url, Identity: key, Card: card, PinnedRelayKey: pinned})
//	go c.Run(ctx)                      // connect, log in, reconnect with backoff
//	for p := range c.Pushes() { ... }  // deliver pushes; ack after committing each
//	id, err := c.Send(ctx, "bob", ciphertext, clientID)
//
// Client methods fail fast with ErrNotConnected while the connection is down (chat/
// keeps an outbox and resends on reconnect; resending with the same client ID is
// safe). Error frames from the relay come back as *ProtocolError with a Code.
//
// Inside the relay, every connection has a read loop on its own goroutine (not the
// HTTP handler's), parked on a shallow stack while idle; a writer goroutine that exists
// only while there is something to send and writes each batch with one system call; a
// bounded outbound queue that holds no memory while idle; and a token bucket for its
// frame rate. An idle logged-in connection costs about 12 KB. Sends from all connections go to
// one committer goroutine that commits everything waiting in one storage transaction
// (group commit) and only then answers "accepted" and publishes the message to the
// Hub, which pushes it to the recipient's connections. The durable Queue and the live
// Hub are interfaces so a multi-node relay can put them over a shared log and a
// message bus; *storage.Relay and MemHub implement them for one node. A recipient that
// does not read never slows a sender: pushes to it only ever try its bounded queue, and
// when that overflows it is disconnected while its messages wait in the store.
//
// `pfschat relay` runs the garbage collector at GOGC=200 with a 256 MiB heap floor and
// a 1 GiB soft memory limit (TuneGC and GCSettings; flags --gc-percent,
// --gc-heap-floor-mib and --memory-limit-mib, and GOGC/GOMEMLIMIT, override): the
// relay's live heap is small, so at Go's default it collected several times a second
// under load, and each mark phase showed in the delivery latency tail.
package relay
