// Package storage keeps everything pfschat remembers in SQLite files: the client store
// (identity, cards, contacts, prekeys, sessions, messages, outbox) and the relay store
// (accounts, prekeys, message queue).
//
// It deals in rows and bytes and imports nothing else of the project. Every secret is
// sealed at rest under a random storage key, itself wrapped by Argon2id of the
// passphrase; a receive or a send is committed in one transaction, so a crash at any
// point loses nothing and never applies anything twice.
package storage
