// Package relay is the wire protocol between pfschat clients and their relay: the
// frames, their types and fields, the error codes, the limits both ends enforce, the
// connection handshake and the login proof. It is what the two ends share; the ends
// themselves live in subpackages:
//
//   - relay/server is the relay: it approves and publishes cards, authenticates
//     clients by key proof, hands out prekeys and stores-and-forwards ciphertext. It
//     never sees a plaintext.
//   - relay/client is the connection a program (chat/) keeps to a relay.
//   - relay/relaytest starts a real relay inside a test, and drives load benchmarks
//     with a lean client of its own.
//   - relay/fifo is the unbounded queue the client keeps its pushes in (chat uses it
//     too).
//
// The protocol is specified in PROTOCOL.md. One WebSocket per client carries JSON
// frames; DecodeFrame reads a client's frame strictly (the relay's side) and
// DecodeServerFrame a relay's leniently (the client's side); EncodeFrame writes either.
//
//	f, err := relay.DecodeFrame(data) // err is a *FrameError naming the code to answer with
//	...
//	ws.WriteMessage(websocket.TextMessage, relay.EncodeFrame(&relay.Frame{Type: relay.TypePong, ID: f.ID}))
//
// A connection starts with the client's fresh nonce in the URL (EncodeNonce, at
// WSPath); the relay's hello proves it holds its key by signing the nonce, its
// challenge and the channel binding (SignHello, VerifyHello: over TLS the RFC 9266
// tls-exporter value, TLSExporter). The client then proves its identity by signing
// LoginMessage(relay key, challenge, binding) under LoginDomain with its identity key.
// There are no bearer tokens: every connection logs in with a fresh proof.
//
// Error frames reach programs as *ProtocolError; errors.Is matches on the code:
//
//	if errors.Is(err, &relay.ProtocolError{Code: relay.CodeQueueFull}) { ... }
//
// # Fast paths, and where they belong
//
// The frames that carry messages (send, ack, deliver, accepted, ok) have hand-written
// encoders and decoders beside the encoding/json ones: AppendDeliver, DecodeSendInto,
// DecodeAckInto and the rest. They recognise only the canonical layout these encoders
// write and give up on anything else, and FuzzFastDecoders checks that whatever they
// accept, the full decoder accepts with the same values: they change speed, never
// behaviour.
//
// The rule for such tricks (hand encoders, pools, batched writes, buffer reuse) is
// that they go only where a benchmark in this repository justifies them. The relay
// load benchmarks (bench_test.go: LoadVsFloor, LoadFixedRate; idle_bench_test.go)
// justify them on the server, which runs thousands of connections in one process.
// The client is one connection per program and keeps to gorilla/websocket's ordinary
// writer under a mutex, encoding/json and no pools. The benchmarks' own load
// generator (relaytest.LoadConn) uses the fast codecs so that the measuring
// instrument costs little beside the relay it measures.
package relay
