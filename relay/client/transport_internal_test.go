package client

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"wss://relay.example.org/v2/ws", false, true},
		{"wss://203.0.113.7:7878/v2/ws", false, true},
		{"ws://127.0.0.1:7878/v2/ws", false, true},
		{"ws://127.8.9.10:7878/v2/ws", false, true},
		{"ws://[::1]:7878/v2/ws", false, true},
		{"ws://localhost:7878/v2/ws", false, true},
		{"ws://LOCALHOST:7878/v2/ws", false, true},
		{"ws://relay.example.org/v2/ws", false, false},
		{"ws://192.168.1.2:7878/v2/ws", false, false},
		{"ws://[::2]:7878/v2/ws", false, false},
		{"ws://[::ffff:10.0.0.1]:7878/v2/ws", false, false},
		{"ws://localhost.example.org/v2/ws", false, false},
		{"ws://127.0.0.1.nip.io/v2/ws", false, false}, // names are not resolved
		{"ws://0.0.0.0:7878/v2/ws", false, false},
		{"ws://relay.example.org/v2/ws", true, true},
		{"ws://192.168.1.2:7878/v2/ws", true, true},
		{"http://127.0.0.1:7878/v2/ws", false, false},
	} {
		err := CheckURL(tc.url, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, insecure=%v) = %v, want ok=%v", tc.url, tc.insecure, err, tc.ok)
		}
		if err != nil && strings.HasPrefix(tc.url, "ws://") && !errors.Is(err, ErrInsecureTransport) {
			t.Errorf("CheckURL(%q): %v is not ErrInsecureTransport", tc.url, err)
		}
		if err != nil && errors.Is(err, ErrInsecureTransport) && !strings.Contains(err.Error(), "wss://") {
			t.Errorf("CheckURL(%q): %v does not say to use wss://", tc.url, err)
		}
	}
}

// TestInsecureWSRefusedBeforeDial: ws:// to a host that is not loopback fails before
// anything is dialled; with InsecureWS it dials, and warns every time.
func TestInsecureWSRefusedBeforeDial(t *testing.T) {
	dialed := 0
	hook := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed++
		return nil, errors.New("test: no network")
	}
	c := New(Config{URL: "ws://relay.example.org:7878"})
	c.dialer.NetDialContext = hook
	defer c.Close()
	err := c.Connect(context.Background())
	if !errors.Is(err, ErrInsecureTransport) || dialed != 0 {
		t.Fatalf("Connect = %v after %d dials; want ErrInsecureTransport and no dial", err, dialed)
	}
	if !fatal(err) {
		t.Fatal("Run would retry an insecure URL")
	}

	var logs bytes.Buffer
	c2 := New(Config{URL: "ws://relay.example.org:7878", InsecureWS: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c2.dialer.NetDialContext = hook
	defer c2.Close()
	for range 2 {
		if err := c2.Connect(context.Background()); err == nil || errors.Is(err, ErrInsecureTransport) {
			t.Fatalf("Connect with InsecureWS = %v, want a dial error", err)
		}
	}
	if dialed != 2 || strings.Count(logs.String(), "insecure relay connection") != 2 {
		t.Fatalf("%d dials, logs:\n%s", dialed, logs.String())
	}
}

func TestNormalizeURLv2(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:7878":             "ws://127.0.0.1:7878/v2/ws",
		"wss://relay.example.org":    "wss://relay.example.org/v2/ws",
		"https://relay.example.org/": "wss://relay.example.org/v2/ws",
	} {
		if got := NormalizeURL(in); got != want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", in, got, want)
		}
	}
}
