package server_test

// Attacks on the relay by a client that knows only relay/PROTOCOL.md, spoken in raw
// frames: what a well-behaved client never sends. Each is the regression test of a
// weakness that was fixed.

import (
	"testing"

	"pfschat/relay"
	"pfschat/storage"
)

// A logged-in account that replaces its card in a loop does not grow the relay's
// store without end: the relay remembers the name's newest storage.MaxReplacedCards
// replaced cards and forgets the older ones (PROTOCOL.md "Card lookup by ID").
func TestReplaceCardLoopKeepsBoundedHistory(t *testing.T) {
	eachStore(t, testReplaceCardLoopKeepsBoundedHistory)
}

func testReplaceCardLoopKeepsBoundedHistory(t *testing.T, bk store) {
	r := bk.Start(t)
	mallory := register(t, r, "mallory")
	rc := dialRaw(t, r)
	if f := rc.login(mallory); f.Type != relay.TypeOK {
		t.Fatalf("login: %+v", f)
	}
	replaced := []string{mallory.card.ID()}
	const rounds = storage.MaxReplacedCards + 2
	for i := range rounds {
		_, card := newIdentity(t, "mallory")
		id := 100 + i
		if f := rc.request(map[string]any{"type": "replace_card", "id": id, "card": card.Export()}); f.Type != relay.TypeCard {
			t.Fatalf("replace_card %d: %+v", i, f)
		}
		replaced = append(replaced, card.ID())
	}
	replaced = replaced[:len(replaced)-1] // the last is current
	lookup := func(id int, cardID string) relay.Frame {
		return rc.request(map[string]any{"type": "lookup_card", "id": id, "card_id": cardID})
	}
	forgotten := len(replaced) - storage.MaxReplacedCards
	for i, cardID := range replaced[:forgotten] {
		expectErr(t, lookup(10+i, cardID), relay.CodeNotFound)
	}
	if f := lookup(20, replaced[forgotten]); f.Type != relay.TypeCard || !f.Replaced {
		t.Fatalf("the oldest replaced card still remembered: %+v", f)
	}
	if f := lookup(21, replaced[len(replaced)-1]); f.Type != relay.TypeCard || !f.Replaced {
		t.Fatalf("the newest replaced card: %+v", f)
	}
}
