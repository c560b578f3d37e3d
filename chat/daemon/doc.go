// Package daemon is the JSON-RPC 2.0 API of a profile's owner: the one process that
// holds a profile (its lock, its unlocked store and its relay connection) — `pfschat
// daemon`, or the terminal UI while it runs — serves every other client of the profile
// through it: scripts, devices, and the headless commands themselves.
//
// The owner serves newline-delimited JSON-RPC 2.0 on a UNIX socket (SocketPath: the
// profile directory's pfschat.sock, mode 0600, or a short private path when that one
// would not fit a socket address) and, optionally, over HTTP in signal-cli's shape
// (HTTPHandler: POST /api/v1/rpc, GET /api/v1/events as Server-Sent Events, GET
// /api/v1/check), authenticated by a bearer secret kept in a 0600 file beside the socket.
//
//	hub := daemon.NewHub(c.Events())              // c: the owner's *chat.Controller
//	srv := daemon.New(daemon.Config{Controller: c, Hub: hub, Owner: profile.OwnerDaemon})
//	ln, _ := daemon.Listen(sock)                  // while holding the profile's lock
//	srv.Serve(ln)
//
//	cl, err := daemon.Dial(ctx, sock)             // errors.Is(err, daemon.ErrNoOwner): open the profile yourself
//	var r daemon.SendResult
//	err = cl.Call(ctx, "send", daemon.SendParams{To: "bob", Text: "hi"}, &r)
//
// What it guarantees: send answers once the message is committed to the outbox (with
// waitMs, once the relay accepted it); subscribe (and GET /api/v1/events) pushes every
// unread incoming message in the store, then every new one once committed, each with
// its stable store id — at least once, until a client calls markRead, whose read state
// is the user's, shared by every subscriber. A request that is not JSON, not JSON-RPC
// 2.0, or names no method gets a JSON-RPC error and the connection stays up. The
// methods, params, notifications and error codes are listed in chat/daemon/API.md.
package daemon
