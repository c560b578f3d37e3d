package relay

import (
	"errors"
	"strings"
	"testing"
)

// A relay's error reaches the user's terminal (the CLI prints it, the UI shows it): a
// hostile relay must not be able to send escape sequences or forge lines through it.
func TestRelayWordsAreSafeToShow(t *testing.T) {
	f, err := DecodeServerFrame([]byte(`{"type":"error","id":4,"code":"bad\u001b[2J","limit":"x\u009b31m",` +
		`"message":"copied\u001b]52;c;ZWNobyBwd25lZA==\u0007 to your clipboard\r\n2026-12-06 10:00:00  bob: forged line\u007f"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "copied\uFFFD]52;c;ZWNobyBwd25lZA==\uFFFD to your clipboard\uFFFD\uFFFD2026-12-06 10:00:00  bob: forged line\uFFFD"
	if f.Message != want || f.Code != "bad\uFFFD[2J" || f.Limit != "x\uFFFD31m" {
		t.Fatalf("got code %q limit %q message %q", f.Code, f.Limit, f.Message)
	}
	if f.ID != 4 {
		t.Fatalf("id %d", f.ID)
	}

	// Invalid UTF-8 (the JSON decoder makes it U+FFFD) and a message far over the
	// bound, cut on a rune.
	long := strings.Repeat("é", 3000)
	f, err = DecodeServerFrame([]byte(`{"type":"going_away","message":"` + long + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Message) > maxDisplayText || !strings.HasSuffix(f.Message, "é…") {
		t.Fatalf("a %d-byte message came out as %d bytes ending %q", len(long), len(f.Message), f.Message[len(f.Message)-8:])
	}

	// The relay's own words pass unchanged.
	f, err = DecodeServerFrame([]byte(`{"type":"error","id":1,"code":"rate_limited","limit":"frames_per_second","message":"slow down — 200 frames a second"}`))
	if err != nil || f.Message != "slow down — 200 frames a second" || f.Code != CodeRateLimited {
		t.Fatalf("%+v %v", f, err)
	}
}

// A deliver names its sender, which a client shows: one whose from is not a name, or
// whose from_card_id is not a card ID, is refused whole, on the fast path (canonical
// layout) and the general one (escapes), as is an ok naming something that is not a
// name (found by a hostile-relay run: a from with escape sequences reached the
// terminal through recv's warnings).
func TestServerFrameNamesAreNames(t *testing.T) {
	card := strings.Repeat("ab", 32)
	good := AppendDeliver(nil, 7, "bob", card, 1, []byte{1, 2, 3})
	if f, err := DecodeServerFrame(good); err != nil || f.From != "bob" || f.FromCardID != card {
		t.Fatalf("a good deliver: %+v %v", f, err)
	}
	for _, b := range [][]byte{
		AppendDeliver(nil, 7, "Bob", card, 1, []byte{1}),                   // fast path: not lower case
		AppendDeliver(nil, 7, "bob", strings.ToUpper(card), 1, []byte{1}),  // fast path: not a card ID
		AppendDeliver(nil, 7, strings.Repeat("b", 33), card, 1, []byte{1}), // too long
		[]byte(`{"type":"deliver","msg_id":7,"from":"evil\u001b[31m\r\nFAKE","from_card_id":"` + card + `","body":"AQID"}`),
		[]byte(`{"type":"deliver","msg_id":7,"from_card_id":"` + card + `","body":"AQID"}`), // no from
		[]byte(`{"type":"deliver","msg_id":7,"from":"bob","from_card_id":"` + card[:63] + `\u0007","body":"AQID"}`),
		[]byte(`{"type":"ok","id":3,"name":"a\u001b]0;title\u0007"}`),
	} {
		f, err := DecodeServerFrame(b)
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Code != CodeBadField {
			t.Fatalf("%q: %+v %v, want bad_field", b, f, err)
		}
	}
}
