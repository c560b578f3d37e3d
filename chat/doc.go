// Package chat is the SecureChat controller: it initializes an identity against a relay,
// keeps one-time prekeys published, starts and loads Double Ratchet sessions per contact,
// and sends and receives messages with delivery receipts. It is a library first: the
// terminal UI and headless device programs use it the same way.
package chat
