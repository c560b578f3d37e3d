package chat

import (
	"strings"
	"testing"
	"time"

	"pfschat/ratchet"
	"pfschat/relay/relaytest"
	"pfschat/storage"
)

// TestEnumsAcrossLayers walks every value of the enums that cross layers — delivery
// states, directions, prekey kinds — from their one definition through the store, the
// controller's messages, the names printed ('recv --json') and the relay's counts, so a
// value added in one place and not the others fails here. (The UI's marks are walked
// in ui's TestDeliveryMarks.)
func TestEnumsAcrossLayers(t *testing.T) {
	ctx := t.Context()
	u := newUser(t, relaytest.Start(t), "alice")
	c := u.c
	if err := c.store.PutCard(ctx, storage.Card{ID: "card-bob", Name: "bob", Data: []byte("x"), FirstSeen: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := c.store.AddContact(ctx, "bob", "card-bob", time.Now()); err != nil {
		t.Fatal(err)
	}

	var states []DeliveryState
	for v := range 256 {
		s := storage.DeliveryState(v)
		if strings.HasPrefix(s.String(), "state(") {
			continue
		}
		states = append(states, s)
		// Stored, read back as the controller's message, printed by its one name.
		id, err := c.store.CommitReceive(ctx, storage.ReceiveTx{Message: &storage.Message{Contact: "bob", Body: []byte(s.String()), State: s}})
		if err != nil {
			t.Fatalf("storing a message in state %v: %v", s, err)
		}
		h, err := c.History(ctx, "bob", id+1, 1)
		if err != nil || len(h) != 1 || h[0].ID != id || h[0].State != s || h[0].Text != s.String() {
			t.Fatalf("state %v through the store: %+v %v", s, h, err)
		}
	}
	want := []DeliveryState{Pending, Sent, Delivered, Read, Failed, UndecryptableState}
	if len(states) != len(want) {
		t.Fatalf("delivery states with a name: %v; chat knows %v", states, want)
	}
	names := map[string]bool{}
	for i, s := range states {
		if s != want[i] || names[s.String()] {
			t.Fatalf("delivery states %v do not match chat's %v one to one", states, want)
		}
		names[s.String()] = true
	}

	var dirs []storage.Direction
	for v := range 256 {
		if d := storage.Direction(v); !strings.HasPrefix(d.String(), "direction(") {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) != 2 || dirs[0] != storage.Incoming || dirs[1] != storage.Outgoing {
		t.Fatalf("directions with a name: %v; chat knows incoming and outgoing", dirs)
	}
	sent, err := c.store.CommitSend(ctx, storage.SendTx{Message: &storage.Message{Contact: "bob", Body: []byte("out")},
		Outbox: storage.OutboxItem{ClientID: "out", To: "bob", Payload: []byte("wire")}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.History(ctx, "bob", 0, 2)
	if err != nil || len(h) != 2 || h[0].ID != sent || !h[0].Outgoing || h[1].Outgoing {
		t.Fatalf("directions through the store: %+v %v", h, err)
	}

	status, err := c.rc.PreKeyStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := 0
	for v := range 256 {
		k := ratchet.PreKeyKind(v)
		if k.String() == "unknown prekey kind" {
			if _, ok := status.Counts[k]; ok {
				t.Errorf("the relay counts prekeys of kind %d, which ratchet does not know", v)
			}
			continue
		}
		kinds++
		if n, ok := status.Counts[k]; !ok || n == 0 {
			t.Errorf("the relay reports no %s (counts %v): its names miss the kind, or chat does not publish it", kindName(k), status.Counts)
		}
		if rows, err := c.store.PreKeys(ctx, uint8(k)); err != nil || len(rows) == 0 {
			t.Errorf("the store holds no private %s: %v", kindName(k), err)
		}
	}
	if kinds == 0 || len(status.Counts) != kinds {
		t.Errorf("ratchet knows %d prekey kinds, the relay counts %v", kinds, status.Counts)
	}
}
