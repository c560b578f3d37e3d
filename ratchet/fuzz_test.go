package ratchet

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"sync"
	"testing"
)

// Fuzz targets. Their seed corpora (valid encodings plus a few broken ones) run
// in every `go test`; run one with e.g. `go test -fuzz=FuzzDecrypt -fuzztime=60s`.

// fuzzMinimizeBudget replaces go test's default -fuzzminimizetime (60 s) in this
// package. Each new interesting input goes to a worker for minimization, which
// tries O(n²) shorter candidates of an n-byte input and reports its executions
// only when it ends. Inputs here are kilobytes (a bundle holds a 1,184-byte
// ML-KEM key, an initial message a 1,088-byte ciphertext), so with the default
// both workers spent a short run minimizing and it showed 0 execs/s from its
// first new input on (FuzzBundleVerify, FuzzDecrypt, FuzzParsePrivatePreKey).
// The cap is a count, not a time: when a time cap runs out, the coordinator
// stops waiting, kills the worker and starts a new one, which made
// FuzzParseCard 5× slower with "1s" than with the default; a worker stops a
// count-capped minimization itself and keeps what it found. Minimizing only
// shortens corpus entries and checks nothing. Give -fuzzminimizetime to choose
// another, e.g. to minimize a crasher further.
const fuzzMinimizeBudget = "50000x"

func TestMain(m *testing.M) {
	flag.Parse()
	if fuzzing := flag.Lookup("test.fuzz"); fuzzing != nil && fuzzing.Value.String() != "" {
		given := false
		flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
		if !given {
			if err := flag.Set("test.fuzzminimizetime", fuzzMinimizeBudget); err != nil {
				panic("ratchet: setting -test.fuzzminimizetime: " + err.Error())
			}
		}
	}
	os.Exit(m.Run())
}

type fuzzFixture struct {
	relay        relayFixture
	alice, bob   *party
	bobState     []byte // a live responder session (skipped keys included)
	initial      []byte // a repeated initial message for bobState
	normal       []byte // a normal message for bobState
	skippedMsg   []byte // a late message whose key bobState stores
	bundle       []byte
	bundleNoOPK  []byte
	sessionAlice []byte
}

var (
	fixtureOnce sync.Once
	fixture     fuzzFixture
)

func getFixture(t testing.TB) *fuzzFixture {
	fixtureOnce.Do(func() {
		// Under -fuzz the coordinator and every worker process build their own
		// fixture, and the seeds one makes run in the others (FuzzAcceptSession
		// accepts only the fixture's own initial message): the handshake must
		// come out the same in every process, so it encapsulates derandomized.
		encapsulateFrom = derandomizedEncapsulate
		defer func() { encapsulateFrom = nil }()
		f := &fixture
		alice, bob, a, b := pair(t, 500)
		f.relay, f.alice, f.bob = newRelay(t, 500), a, b
		f.initial, _ = alice.Encrypt([]byte("initial"))
		f.skippedMsg, _ = alice.Encrypt([]byte("late"))
		third, _ := alice.Encrypt([]byte("third"))
		if _, err := bob.Decrypt(third); err != nil {
			t.Fatal(err)
		}
		r, _ := bob.Encrypt([]byte("reply"))
		alice.Decrypt(r)
		f.normal, _ = alice.Encrypt([]byte("normal"))
		f.bobState, _ = bob.MarshalBinary()
		f.sessionAlice, _ = alice.MarshalBinary()
		f.bundle, _ = b.bundle(true, true).MarshalBinary()
		f.bundleNoOPK, _ = b.bundle(false, false).MarshalBinary()
	})
	return &fixture
}

// typedRefusal fails t unless err wraps one of the package's error values
// (errors.go): every decoder refuses bad input with a typed error.
func typedRefusal(t *testing.T, what string, err error) {
	t.Helper()
	for _, want := range []error{ErrMalformed, ErrTrailingBytes, ErrOversize, ErrUnknownVersion, ErrBadSignature,
		ErrCardIDMismatch, ErrInvalidName, ErrWrongCard, ErrMissingPreKey, ErrDecrypt, ErrReplay, ErrTooManySkipped,
		ErrPlaintextTooLarge, ErrNotInitial, ErrWrongSession, ErrNoSendingChain} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("%s: untyped error %v", what, err)
}

// addMutations seeds a corpus with b and a few truncations and bit flips.
func addMutations(f *testing.F, b []byte) {
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add(append(bytes.Clone(b), 0))
	for _, i := range []int{0, 1, len(b) / 3, len(b) - 1} {
		if i >= 0 && i < len(b) {
			m := bytes.Clone(b)
			m[i] ^= 0x41
			f.Add(m)
		}
	}
}

func FuzzImportCard(f *testing.F) {
	fx := getFixture(f)
	f.Add(fx.alice.card.Export())
	f.Add(CardExportPrefix)
	f.Add("pfscard2:AAAA")
	f.Add(fx.alice.card.Export()[:40])
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ImportCard(s)
		if err != nil {
			typedRefusal(t, "ImportCard", err)
			return
		}
		// Whatever imports re-exports to an equivalent card with the same ID.
		c2, err := ImportCard(c.Export())
		if err != nil || c2.ID() != c.ID() {
			t.Fatalf("re-import: %v", err)
		}
		_ = c.VerifyWithRelay(fx.relay.pub)
	})
}

func FuzzParseCard(f *testing.F) {
	fx := getFixture(f)
	b, _ := fx.bob.card.MarshalBinary()
	addMutations(f, b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCard(b)
		if err != nil {
			typedRefusal(t, "ParseCard", err)
			return
		}
		out, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("parsed card does not re-encode to its input: %v", err)
		}
		_ = c.Verify()
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	fx := getFixture(f)
	addMutations(f, fx.initial)
	addMutations(f, fx.normal)
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err != nil {
			typedRefusal(t, "DecodeEnvelope", err)
			return
		}
		if (env.Type == MessageInitial) != (env.Initial != nil) {
			t.Fatal("Initial set for the wrong type")
		}
		if env.Initial != nil {
			_ = env.Initial.SessionID()
		}
	})
}

// FuzzDecrypt feeds arbitrary bytes to a live session: it must never panic,
// and whenever it fails the marshalled state must be unchanged.
func FuzzDecrypt(f *testing.F) {
	fx := getFixture(f)
	addMutations(f, fx.initial)
	addMutations(f, fx.normal)
	addMutations(f, fx.skippedMsg)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSession(fx.bobState)
		if err != nil {
			t.Fatal(err)
		}
		s.SetRand(seeded(1))
		if _, err := s.Decrypt(b); err != nil {
			typedRefusal(t, "Decrypt", err)
			after, _ := s.MarshalBinary()
			if !bytes.Equal(after, fx.bobState) {
				t.Fatalf("failed decrypt (%v) changed the state", err)
			}
		}
	})
}

func FuzzBundleVerify(f *testing.F) {
	fx := getFixture(f)
	addMutations(f, fx.bundle)
	addMutations(f, fx.bundleNoOPK)
	f.Fuzz(func(t *testing.T, b []byte) {
		bundle, err := ParseBundle(b)
		if err != nil {
			return
		}
		if err := bundle.Verify(fx.bob.card, fx.relay.pub); err != nil {
			typedRefusal(t, "Bundle.Verify", err)
			return
		}
		// A verified bundle must start a session.
		if _, err := StartSession(seeded(2), fx.alice.key, fx.alice.card, fx.bob.card, fx.relay.pub, bundle); err != nil {
			t.Fatalf("verified bundle does not start a session: %v", err)
		}
	})
}

func FuzzParseSession(f *testing.F) {
	fx := getFixture(f)
	addMutations(f, fx.bobState)
	addMutations(f, fx.sessionAlice)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSession(b)
		if err != nil {
			typedRefusal(t, "ParseSession", err)
			return
		}
		out, _ := s.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatal("parsed session does not re-encode to its input")
		}
		s.SetRand(seeded(3))
		_, _ = s.Encrypt([]byte("x"))
		_, _ = s.Decrypt(fx.normal)
	})
}

func FuzzParsePrivatePreKey(f *testing.F) {
	fx := getFixture(f)
	for _, k := range []*PrivatePreKey{fx.bob.spk, fx.bob.opk, fx.bob.kem, fx.bob.lr} {
		b, _ := k.MarshalBinary()
		addMutations(f, b)
		pub, _ := k.Public().MarshalBinary()
		f.Add(pub)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParsePublicPreKey(b); err != nil {
			typedRefusal(t, "ParsePublicPreKey", err)
		} else {
			out, _ := p.MarshalBinary()
			if !bytes.Equal(out, b) {
				t.Fatal("public prekey does not re-encode to its input")
			}
			_ = p.Verify(fx.bob.card)
		}
		if k, err := ParsePrivatePreKey(b); err != nil {
			typedRefusal(t, "ParsePrivatePreKey", err)
		} else {
			out, _ := k.MarshalBinary()
			if !bytes.Equal(out, b) {
				t.Fatal("private prekey does not re-encode to its input")
			}
		}
	})
}

func FuzzParseIdentityKey(f *testing.F) {
	fx := getFixture(f)
	b, _ := fx.alice.key.MarshalBinary()
	addMutations(f, b)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseIdentityKey(b)
		if err != nil {
			typedRefusal(t, "ParseIdentityKey", err)
			return
		}
		out, _ := k.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatal("identity key does not re-encode to its input")
		}
	})
}

// FuzzAcceptSession runs the responder's handshake on arbitrary messages with
// the right keys: it must never panic, and only authentic messages succeed.
func FuzzAcceptSession(f *testing.F) {
	fx := getFixture(f)
	addMutations(f, fx.initial)
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err != nil || env.Initial == nil {
			return
		}
		keys := ResponderKeys{SignedPreKey: fx.bob.spk, OneTimePreKey: fx.bob.opk, KEMPreKey: fx.bob.kem}
		if env.Initial.KEMPreKeyKind == KEMLastResort {
			keys.KEMPreKey = fx.bob.lr
		}
		s, pt, err := AcceptSession(fx.bob.key, fx.bob.card, fx.alice.card, keys, env)
		if err != nil {
			typedRefusal(t, "AcceptSession", err)
		}
		if err == nil && (s == nil || !bytes.Equal(b, fx.initial) || string(pt) != "initial") {
			t.Fatalf("accepted a message that is not the fixture's: %q", pt)
		}
	})
}

// FuzzOpenStreamChunk feeds the chunk decoder and the stream reader arbitrary sealed
// bytes: they must refuse them with a typed error and never panic.
func FuzzOpenStreamChunk(f *testing.F) {
	var key [StreamKeySize]byte
	one, _ := SealStreamChunk(nil, &key, 0, true, []byte("hello"))
	f.Add(one, uint64(0), true)
	f.Add([]byte{}, uint64(1), false)
	f.Add(make([]byte, StreamSealedChunkSize), uint64(7), false)
	f.Fuzz(func(t *testing.T, sealed []byte, i uint64, last bool) {
		if out, err := OpenStreamChunk(nil, &key, i, last, sealed); err == nil {
			if len(out) != len(sealed)-StreamTagSize {
				t.Fatalf("opened %d bytes from %d", len(out), len(sealed))
			}
		} else if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("untyped error %v", err)
		}
		_, err := io.ReadAll(NewStreamReader(bytes.NewReader(sealed), &key))
		if err != nil && !errors.Is(err, ErrDecrypt) {
			t.Fatalf("stream reader: untyped error %v", err)
		}
	})
}

// FuzzStreamSizes: the two size functions of STREAM.md are each other's inverse on
// every int64 they accept, and refuse the rest with ErrStreamSize.
func FuzzStreamSizes(f *testing.F) {
	for _, n := range []int64{-1, 0, 15, 16, 17, StreamChunkSize, StreamSealedChunkSize, StreamSealedChunkSize + 16,
		StreamSealedChunkSize + 17, maxStreamChunks * StreamSealedChunkSize, math.MaxInt64 - StreamChunkSize + 2, math.MaxInt64} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if s, err := StreamSealedSize(n); err == nil {
			if s < n+StreamTagSize {
				t.Fatalf("StreamSealedSize(%d) = %d", n, s)
			}
			if p, err := StreamPlainSize(s); err != nil || p != n {
				t.Fatalf("StreamPlainSize(StreamSealedSize(%d) = %d) = %d, %v", n, s, p, err)
			}
		} else if !errors.Is(err, ErrStreamSize) {
			t.Fatalf("StreamSealedSize(%d): untyped error %v", n, err)
		}
		if p, err := StreamPlainSize(n); err == nil {
			if s, err := StreamSealedSize(p); err != nil || s != n {
				t.Fatalf("StreamSealedSize(StreamPlainSize(%d) = %d) = %d, %v", n, p, s, err)
			}
		} else if !errors.Is(err, ErrStreamSize) {
			t.Fatalf("StreamPlainSize(%d): untyped error %v", n, err)
		}
	})
}

// FuzzParseBundle: a bundle comes from the relay. Parsing refuses with the package's
// typed errors, and what parses encodes back to its input.
func FuzzParseBundle(f *testing.F) {
	fx := getFixture(f)
	addMutations(f, fx.bundle)
	addMutations(f, fx.bundleNoOPK)
	f.Fuzz(func(t *testing.T, b []byte) {
		bundle, err := ParseBundle(b)
		if err != nil {
			for _, want := range []error{ErrMalformed, ErrTrailingBytes, ErrOversize, ErrUnknownVersion, ErrInvalidName} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("untyped error %v", err)
		}
		out, err := bundle.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("parsed bundle does not re-encode to its input: %v", err)
		}
	})
}
