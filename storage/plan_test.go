package storage

import (
	"strings"
	"testing"
)

// TestQueryPlans pins the hot queries to their indexes: no full scan, no sort.
func TestQueryPlans(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, nil)
	r := newRelay(t, RelayOptions{})
	for _, q := range []struct {
		d     *db
		query string
		args  []any
		index string
	}{
		{c.db, "SELECT " + messageCols + " FROM messages WHERE contact = ? AND id < ? ORDER BY id DESC LIMIT ?", []any{"bob", 1 << 62, 51}, "messages_by_contact"},
		{c.db, "UPDATE messages SET state = 3 WHERE contact = ? AND direction = 1 AND state < 3", []any{"bob"}, "messages_unread"},
		// A contact's unread count visits only the unread messages with a reason, not
		// every unread one (every read of a contact did, once per message received).
		{c.db, "SELECT c.unread + (" + unreadFilledCount + ") FROM contacts c WHERE c.name = ?", []any{"bob"}, "messages_unread_filled"},
		{c.db, "SELECT " + messageCols + " FROM messages WHERE client_id = ? AND client_id <> '' ORDER BY direction DESC, id LIMIT 1", []any{"x"}, "messages_by_client_id"},
		{c.db, "SELECT " + messageCols + " FROM messages WHERE relay_id = ? AND relay_id <> '' AND direction = 1 LIMIT 1", []any{"7:ab"}, "messages_by_relay_id"},
		{c.db, "SELECT id FROM sessions WHERE peer_card_id = ? ORDER BY active DESC, updated_at DESC, id", []any{"p"}, "sessions_by_peer"},
		{r.db, "SELECT id FROM queue WHERE recipient = ? AND id > ? ORDER BY id LIMIT ?", []any{"bob", 0, 100}, "queue_by_recipient"},
		// The ack delete finds rows by id (the rowid); expiry scans queue on purpose (an
		// index on expires_at cost every enqueue and ack) but not dedup.
		{r.db, ackDelete.text(2), []any{"bob", 1, "carol", 2}, "INTEGER PRIMARY KEY"},
		{r.db, expireDelete.text(2), []any{1, 5, 6}, "INTEGER PRIMARY KEY"},
		{r.db, "DELETE FROM dedup WHERE expires_at <> 0 AND expires_at < ?", []any{1}, "dedup_by_expiry"},
		// A card's prekey ids and counts come from the index without the keys' data (the
		// table's ML-KEM rows spill into overflow pages, which a PRIMARY KEY range reads).
		{r.db, "SELECT min(id) FROM prekeys WHERE card_id = ? AND kind = ?", []any{"c", 2}, "COVERING INDEX prekeys_ids"},
		{r.db, "SELECT count(*) FROM prekeys WHERE card_id = ? AND kind = ?", []any{"c", 4}, "COVERING INDEX prekeys_ids"},
		{r.db, "SELECT id FROM prekeys WHERE card_id = ? AND kind = ? ORDER BY id", []any{"c", 4}, "COVERING INDEX prekeys_ids"},
	} {
		rows, err := q.d.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q.query, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, q.index) || strings.Contains(p, "TEMP B-TREE") || strings.HasPrefix(p, "SCAN ") {
			t.Errorf("%s\n  plan: %s\n  want it to use %s without a sort", q.query, p, q.index)
		}
	}
}
