// Package relay is the wire between pfschat clients: a WebSocket server that approves
// and publishes cards, authenticates clients by key proof, hands out prekeys and
// stores-and-forwards ciphertext, and the client that chat/ uses to talk to it.
//
// The relay never sees a plaintext. The protocol is specified in PROTOCOL.md.
package relay
