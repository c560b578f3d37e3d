package cluster

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestConnectErrorRedactsURLUserInfo: a NATS URL's user information is a password or
// a token; Connect's error (printed by pfschat relay, logged by a caller) must name
// the servers without it, whatever the URL's form.
func TestConnectErrorRedactsURLUserInfo(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens, the dial is refused at once.
	urls := []string{"nats://alice:pa55-w0rd@127.0.0.1:1", "nats://s3cret-t0ken@127.0.0.1:1", "tls://127.0.0.1:1"}
	_, err := Connect(ctx, Options{URLs: urls, Timeout: time.Second})
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	for _, secret := range []string{"pa55-w0rd", "s3cret-t0ken", "alice"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Connect's error shows %q: %v", secret, err)
		}
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Connect's error does not name the servers: %v", err)
	}
}

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://h:4222", "nats://h:4222"},
		{"nats://u:p@h:4222", "nats://redacted@h:4222"},
		{"nats://tok@h:4222", "nats://redacted@h:4222"},
		{"nats://tok@h:4222/%zz", "[redacted]@h:4222/%zz"},
	} {
		if got := redactURLs([]string{tc.in}); got != tc.want {
			t.Errorf("redactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
