package server

import (
	"strconv"
	"testing"
	"time"
)

// An attacker cycling keys cannot grow a keyed limiter past its bound: the least
// recently used keys go, the busy ones stay.
func TestKeyedLimiterBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newKeyedLimiter(1, time.Hour, 1, func() time.Time { return now })
	k.max = 100
	if ok, _ := k.allow("honest"); !ok {
		t.Fatal("first event refused")
	}
	for i := range 10_000 {
		k.allow("attacker-" + strconv.Itoa(i))
		if i%50 == 0 {
			k.allow("honest") // in use: never the least recently used
		}
	}
	if n := k.len(); n != 100 {
		t.Fatalf("limiter holds %d keys, want the bound 100", n)
	}
	if ok, retry := k.allow("honest"); ok || retry <= 0 {
		t.Fatalf("the busy key was evicted (allowed again: %v, retry %v)", ok, retry)
	}
}

func TestKeyedLimiterRate(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newKeyedLimiter(30, time.Minute, 10, func() time.Time { return now })
	for i := range 10 {
		if ok, _ := k.allow("a"); !ok {
			t.Fatalf("burst event %d refused", i)
		}
	}
	ok, retry := k.allow("a")
	if ok || retry != 2*time.Second {
		t.Fatalf("11th: ok %v retry %v, want refused, 2s", ok, retry)
	}
	now = now.Add(2 * time.Second)
	if ok, _ := k.allow("a"); !ok {
		t.Fatal("refused after 2 s")
	}
	if ok, _ := k.allow("b"); !ok {
		t.Fatal("another key refused")
	}
	var off *keyedLimiter = newKeyedLimiter(-1, time.Minute, 1, time.Now)
	if ok, _ := off.allow("x"); !ok {
		t.Fatal("an off limiter refused")
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:443":                  "192.0.2.7",
		"[::ffff:192.0.2.7]:443":         "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443":     "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:ffff::1]:80": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:80":           "2001:db8:1:3::/64",
		"[fe80::1%eth0]:80":              "fe80::/64",
		"not an address":                 "not an address",
	} {
		if got := addressKey(in); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAbuseAdmit(t *testing.T) {
	a := newAbuse(Limits{ConnectionsPerAddress: 2, MaxConnections: 3}.withDefaults(), time.Now)
	for _, k := range []string{"x", "x", "y"} {
		if l := a.admit(k); l != "" {
			t.Fatalf("admit %s: %s", k, l)
		}
	}
	if l := a.admit("z"); l != LimitConnectionsTotal {
		t.Fatalf("4th: %q", l)
	}
	a.release("y")
	if l := a.admit("x"); l != LimitConnectionsPerAddress {
		t.Fatalf("3rd from x: %q", l)
	}
	a.release("x")
	a.release("x")
	if len(a.perAddr) != 0 {
		t.Fatalf("released addresses kept: %v", a.perAddr)
	}
}
