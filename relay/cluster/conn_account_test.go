package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"pfschat/relay/cluster/natstest"
)

// TestConnectAccountWithoutJetStream: a NATS system with JetStream on whose account
// for the relay has none (operator mode: nsc makes accounts without JetStream limits)
// is refused with a message that names the account and how to give it JetStream, not
// "start nats-server with -js" (the server has it).
func TestConnectAccountWithoutJetStream(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	src := "listen: 127.0.0.1:-1\njetstream { store_dir: " + `"` + filepath.Join(dir, "js") + `"` + " }\n" +
		"accounts {\n  OTHER: { jetstream: enabled, users: [ {user: other, password: o} ] }\n" +
		"  RELAY: { users: [ {user: relay, password: r} ] }\n}\n"
	if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	s := natstest.WithOptions(t, o)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	url := strings.Replace(s.URL(), "nats://", "nats://relay:r@", 1)
	c, err := Connect(ctx, Options{URLs: []string{url}, Timeout: 5 * time.Second})
	if err == nil {
		c.Close()
		t.Fatal("Connect succeeded on an account without JetStream")
	}
	for _, want := range []string{"not enabled for the relay's NATS account", "--js-disk-storage", "auth.conf"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Connect's error does not say %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "-js)") {
		t.Errorf("Connect's error tells to start nats-server with -js, which it has: %v", err)
	}
}
