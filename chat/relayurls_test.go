package chat_test

import (
	"strings"
	"testing"

	"pfschat/chat"
)

// TestNormalizeRelayURLList: several URLs separated by commas (the nodes of one relay
// cluster) are each checked and normalized; an empty entry, a repeated node or one bad
// URL refuses the whole list with a message naming what is wrong.
func TestNormalizeRelayURLList(t *testing.T) {
	got, err := chat.NormalizeRelayURL(" wss://a.example.org , wss://b.example.org:7443/v2/ws,ws://127.0.0.1:7878")
	if err != nil {
		t.Fatal(err)
	}
	if want := "wss://a.example.org/v2/ws,wss://b.example.org:7443/v2/ws,ws://127.0.0.1:7878/v2/ws"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for in, says := range map[string]string{
		"wss://a,,wss://b":      "empty entry",
		"wss://a,":              "empty entry",
		"wss://a,wss://a/v2/ws": "twice",
		"wss://a,http://b":      "must start with ws:// or wss://",
		"wss://a,ws://":         "has no host",
	} {
		if _, err := chat.NormalizeRelayURL(in); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("NormalizeRelayURL(%q) = %v, want an error saying %q", in, err, says)
		}
	}
}
