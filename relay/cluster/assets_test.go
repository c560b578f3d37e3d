package cluster_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// TestAssetNATSClusterConf: the NATS configuration in assets/ (README "Run a relay
// cluster") parses, and says what the README says: JetStream on file storage syncing
// every write, a named cluster routed to three servers, monitoring on loopback.
func TestAssetNATSClusterConf(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "assets", "nats-cluster.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats-cluster.conf")
	if err := os.WriteFile(conf, src, 0o600); err != nil {
		t.Fatal(err)
	}
	// What `nsc generate config` would write; any valid block will do here.
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), []byte("authorization { users = [ {user: relay, password: \"x\"} ] }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_NAME", "nats2")
	o, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("assets/nats-cluster.conf: %v", err)
	}
	if o.ServerName != "nats2" || !o.JetStream || !o.SyncAlways || o.StoreDir == "" {
		t.Errorf("server %q, jetstream %v, sync always %v, store %q", o.ServerName, o.JetStream, o.SyncAlways, o.StoreDir)
	}
	if o.Cluster.Name != "pfschat" || len(o.Routes) != 3 || o.Cluster.Password == "" {
		t.Errorf("cluster %q with %d routes (password set: %v)", o.Cluster.Name, len(o.Routes), o.Cluster.Password != "")
	}
	if o.HTTPHost != "127.0.0.1" {
		t.Errorf("monitoring on %q, want loopback", o.HTTPHost)
	}
}
