// Package storage keeps everything pfschat remembers in SQLite files: the client store
// (identity, cards, contacts, prekeys, sessions, messages, outbox) and the relay store
// (accounts, prekeys, message queue). It deals in rows and bytes and imports nothing
// else of the project.
//
// # Opening
//
//	c, err := storage.CreateClient(ctx, path, passphrase) // new profile
//	c, err := storage.OpenClient(ctx, path, passphrase)   // ErrNotFound, ErrWrongPassphrase
//	defer c.Close()
//
//	r, err := storage.OpenRelay(ctx, path, storage.RelayOptions{MaxQueueCount: 10000})
//
// Both stores go through one open path (database/sql over modernc.org/sqlite, pure Go):
// WAL journal, foreign keys on, a busy timeout for other processes, synchronous=FULL
// unless NORMAL is asked for (see SyncFull for the trade-off), secure_delete so deleted
// keys do not linger in free pages. Each store has one writer connection — every write
// is one BEGIN IMMEDIATE transaction on it, so writers queue instead of failing with
// SQLITE_BUSY — and a small pool of query-only readers that WAL lets run beside it.
// The relay queue's writes (Commit, AckBatch, Expire), which run many times a second,
// skip database/sql's per-statement wrappers and use statements prepared once on the
// writer's driver connection: at 10k msg/s that removed most of the relay's garbage.
// The schema is a series of embedded, numbered, forward-only migrations
// (migrations/<kind>/NNNN_*.sql), each applied in one transaction together with
// PRAGMA user_version. A new file is made from schema/<kind>.sql instead, the whole
// schema at the latest version, which TestSchemaSnapshot writes from the migrations
// (-update) and checks against them row for row: the migrations one after another
// re-read the schema at every ALTER TABLE. A file written by a newer pfschat is
// refused with ErrNewerSchema and left untouched; a relay file opened as a client (or
// any foreign database) is refused with ErrWrongKind.
//
// # Failing safe
//
// A new store file is created 0600 whatever the umask (SQLite gives its -wal and -shm
// files the same mode). An empty file, one that is not a SQLite database, or a foreign
// database where a store should be is ErrDamaged ("restore it from a backup"), never
// ErrNotFound, so no caller mistakes a damaged profile for a missing one and creates a
// new identity over it. A sealed row that does not open (a message, a prekey, a
// session, an outbox item) is skipped by the listing reads with a logged warning and
// counted (CorruptRowsSkipped): one damaged row never bricks a profile. A full disk is
// ErrDiskFull, naming the directory and the space left (or, with bytes to spare, that
// it has no free inodes), instead of SQLite's "database or disk is full" or "disk I/O
// error (4874)".
//
// # Sealing
//
// A client store has a random 32-byte storage key. Every secret — identity private key,
// prekey private halves, ratchet states, message bodies, outbox payloads — is sealed
// with XChaCha20-Poly1305 under it, with associated data naming table, column and row,
// so a sealed value copied to another row does not open (ErrCorrupt). The storage key
// itself is wrapped by a key derived with Argon2id from the passphrase; the parameters
// (DefaultKDF: 3 passes, 64 MiB, 4 lanes) and the salt are stored beside it, so they
// can be raised later; parameters below DefaultKDF wrap a key only in a test binary
// (ErrWeakKDF elsewhere). A wrong passphrase gives ErrWrongPassphrase before anything is
// written. ChangePassphrase re-wraps only the key. A nil passphrase creates a demo
// store whose key is kept unwrapped, marked mode 'none' in the keyring table: for the
// throwaway demo profile only. API callers pass and receive plaintext; sealing happens
// here.
//
// Byte formats, for auditors. A sealed column is 0x01 ‖ nonce (24) ‖ ciphertext ‖ tag
// (16), XChaCha20-Poly1305 under the storage key with associated data
// "pfschat/storage/v1" 0x00 table 0x00 column 0x00 row-key (row key: "1" for the
// identity, "kind/id" for a prekey, the session id, the message id in decimal, the
// outbox client id; a session's id is followed by "#" and its generation from schema
// version 5 on). The keyring row holds mode ('argon2id' or 'none'), kdf_time,
// kdf_memory (KiB), kdf_threads, a 16-byte salt and the wrapped key: the same sealed
// layout under Argon2id(passphrase, salt) with associated data
// "pfschat/storage-key/v1" 0x00 ‖ time (4, big endian) ‖ memory (4) ‖ threads (1) ‖
// salt. In mode 'none' the wrapped column is the bare 32-byte key.
//
// # Committing
//
// A receive is one call, CommitReceive: the relay message id (duplicate detection,
// ErrDuplicate), the new ratchet state, the consumed one-time prekeys, the message and
// any delivery receipts commit together or not at all. Only after it returns does the
// caller ack the relay. A send is one call, CommitSend: ratchet state, message row and
// outbox item; RemoveOutbox once the relay accepted it. A crash at any point therefore
// loses nothing and never decrypts anything twice.
//
// A session row carries a generation, bumped by every commit of it and bound into its
// seal. Every write of a session names the generation it read (Session.Generation) and
// is refused with a *StaleSessionError (ErrStaleSession) when the row has moved on: two
// processes that both opened the profile can never overwrite each other's ratchet
// state, so no chain key is ever used twice. A first message that created a session is
// recorded in the same transaction (ReceiveTx.FirstMessage); a copy of it is refused
// with ErrReplayedFirstMessage, even once the session is gone.
//
// On the relay, Enqueue takes a batch and commits it in one transaction (group commit),
// reporting per message whether it was queued, a duplicate of (From, ClientID), or
// refused by a per-recipient limit (*QueueFullError). TakePreKey hands out each
// one-time prekey exactly once, even under concurrent callers.
//
// # What deletion means
//
// Consumed one-time prekeys and replaced ratchet states are deleted with SQLite's
// secure_delete on, so their pages are zeroed in the database file. Older copies can
// survive in the WAL until it is checkpointed and reset (closing the store does both)
// and in the disk's free blocks; all of them are sealed, so reading them needs the
// passphrase as well as the file. ChangePassphrase does not re-key old copies of the
// file: the storage key is unchanged.
//
// The relay store holds nothing secret in its rows (ciphertext bodies, public cards
// and prekeys) and uses secure_delete FAST instead: an acknowledged body's pages go to
// the free list without being rewritten, so an ack costs a few pages of WAL, not the
// body again, and acks still commit on a full disk. AckBatch commits without waiting
// for the disk's flush (synchronous=NORMAL for that one transaction): an ack lost to a
// power cut is a redelivery receivers drop by its id, while an fsync per ack commit
// would hold the one writer, and every send queued behind it, for the disk's latency.
// The next synced commit flushes the WAL, acks and all.
//
// # Room for search
//
// Local full-text search is a later step. An FTS index over bodies would store them in
// the clear, so it must be built sealed (or in memory at unlock); message ids are stable
// AUTOINCREMENT integers, ready to key such an index, and a new migration adds it.
//
// Times are stored as Unix nanoseconds and come back in UTC.
package storage
