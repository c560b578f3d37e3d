package relay

import (
	"errors"
	"strings"
	"testing"
)

// lookup_card's grammar: an id and a card_id, nothing else; the hello's registration
// field and the card answer's replaced mark are the relay's to send, never a client's.
func TestDecodeLookupCard(t *testing.T) {
	id := strings.Repeat("9f", 32)
	f, err := DecodeFrame([]byte(`{"type":"lookup_card","id":7,"card_id":"` + id + `"}`))
	if err != nil || f.Type != TypeLookupCard || f.CardID != id || f.ID != 7 {
		t.Fatalf("lookup_card: %+v %v", f, err)
	}
	for _, bad := range []string{
		`{"type":"lookup_card","id":7}`,
		`{"type":"lookup_card","card_id":"` + id + `"}`,
		`{"type":"lookup_card","id":7,"card_id":"` + id + `","name":"bob"}`,
		`{"type":"lookup_card","id":7,"card_id":"` + id + `00"}`,
		`{"type":"hello","id":1,"versions":[2],"registration":"open"}`,
		`{"type":"lookup_card","id":7,"card_id":"` + id + `","replaced":true}`,
		`{"type":"lookup_card","id":7,"card_id":"` + id + `","Replaced":true}`,
	} {
		var fe *FrameError
		if _, err := DecodeFrame([]byte(bad)); !errors.As(err, &fe) {
			t.Errorf("%s accepted: %v", bad, err)
		}
	}
}
