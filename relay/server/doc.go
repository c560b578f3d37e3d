// Package server is the pfschat relay: an http.Handler serving the WebSocket protocol
// of package relay at /v2/ws, with /healthz; /metrics (Prometheus text format) is on a
// separate handler for the admin port (AdminHandler).
// It approves and publishes cards, authenticates clients by key proof, hands out
// prekeys and stores-and-forwards ciphertext; it never sees a plaintext.
//
// Running a relay in-process (tests, `pfschat demo`; `pfschat relay` is the command
// in chat/cli):
//
//	store, _ := storage.OpenRelay(ctx, path, storage.RelayOptions{})
//	srv, _ := server.New(ctx, server.Config{Store: store, Logger: log})
//	go http.ListenAndServe("127.0.0.1:7879", srv.AdminHandler()) // /metrics, /healthz
//	http.ListenAndServe(addr, srv) // serves /v2/ws, /v1/ws's upgrade error, /healthz
//	// or, with TLS 1.3 (the channel binding is the connection's TLS exporter):
//	// ln, _ := net.Listen("tcp", addr)
//	// (&http.Server{Handler: srv}).Serve(tls.NewListener(server.ParkingListener(ln), tlsConf))
//	...
//	srv.Shutdown(ctx) // drains: every send already read is committed and answered
//	store.Close()
//
// Tests use relay/relaytest, which does the above on a temporary database.
//
// Inside the relay, every connection has a read loop on its own goroutine (not the
// HTTP handler's, reader.go), parked on a shallow stack while idle; a writer goroutine
// that exists only while there is something to send and writes each batch with one
// system call (writer.go); a bounded outbound queue that holds no memory while idle
// (outqueue.go); and a token bucket for its frame rate (ratelimit.go). An idle
// logged-in connection costs about 12 KB. The handlers (handlers.go) answer requests;
// sends from all connections go to one committer goroutine (committer.go) that
// commits everything waiting in one storage transaction (group commit) and only then
// answers "accepted" and publishes the message to the Hub (hub.go), which pushes it to
// the recipient's connections (delivery.go). The durable Queue and the live Hub are
// interfaces (queue.go, hub.go) so a multi-node relay can put them over a shared log
// and a message bus; *storage.Relay and MemHub implement them for one node. A
// recipient that does not read never slows a sender: pushes to it only ever try its
// bounded queue, and when that overflows it is disconnected while its messages wait
// in the store.
//
// Abuse limits (limits.go; PROTOCOL.md "Limits and abuse") each have a name, an error
// frame and a counter, pfschat_relay_limited_total{limit=...}: a login deadline,
// connection caps per address (IPv6 per /64) and in total, bundle fetches per requester
// and per target, lookups per requester, prekey uploads and account writes per
// name (replace_card, block, unblock, set_recovery), registrations per
// address and the registration policy (Config.Registration, invite codes from
// CreateInvite), per-sender quotas in the store. Per-key state lives in bounded LRU
// maps of x/time/rate limiters; when the Store is shared by several relay nodes and
// implements SharedLimiter, the limits that protect someone else or the shared store
// (bundles per target, low_prekeys notices, registrations per address, recovery
// attempts, prekey uploads, account writes) count there instead, and a Store that implements ChangeFeed
// keeps the node's caches of accounts and blocks in line with the other nodes' writes
// (changes.go). Behind a load balancer, ProxyListener takes the client's address from a
// PROXY v2 header (proxyproto.go), only from trusted peers.
//
// The hot paths here (pooled requests, hand-written frame codecs from package relay,
// batched writes) are justified by the relay load benchmarks in package relay; see
// the rule in package relay's documentation. The process-wide garbage-collector
// policy `pfschat relay` runs with belongs to the command (chat/cli), which reads the
// traffic it needs from Server.MessagesAccepted.
//
// Operations: Config.Disk is the disk high-water mark (diskspace.go: below it, in free
// bytes or free inodes, sends get storage_full, acks go on, a reserve file is released
// when the disk is nearly exhausted); Config.AccountExpiry frees idle names and delete_account lets a card
// delete its own account (accounts.go); RotateKey and ReplaceCompromisedKey change the
// relay key offline, the former with a statement by the old key that the hello serves
// (relaykey.go):
//
//	srv, _ := server.New(ctx, server.Config{Store: store,
//		Disk:          server.DiskConfig{MinFreeBytes: 256 << 20, ReservePath: path + ".reserve", ReserveBytes: 32 << 20},
//		AccountExpiry: 365 * 24 * time.Hour})
package server
