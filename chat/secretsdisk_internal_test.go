package chat

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/relay/relaytest"
)

// secrets is what an attacker reading the disk after the fact must not find in the
// clear: label → bytes.
type secrets map[string][]byte

func (s secrets) add(label string, b []byte) {
	if len(b) >= 16 && !bytes.Equal(b, make([]byte, len(b))) {
		s[label] = bytes.Clone(b)
	}
}

// collectSecrets adds every private key the user's store holds, read through the
// store's own API and taken apart by the ratchet's byte layouts: the identity's two
// private halves, each prekey's secret, each session's root, chain and sending ratchet
// keys and skipped message keys, each attachment's key. tag tells one collection from
// another (keys replaced later stay in s under their old tag).
func collectSecrets(t *testing.T, u *user, tag string, s secrets) {
	t.Helper()
	ctx := t.Context()
	st := u.c.store
	id, err := st.Identity(ctx)
	must(t, err)
	if len(id.PrivateKey) != 65 {
		t.Fatalf("identity private key of %d bytes", len(id.PrivateKey))
	}
	s.add(u.name+" identity Ed25519 seed", id.PrivateKey[1:33])
	s.add(u.name+" identity X25519 key", id.PrivateKey[33:65])
	for kind := ratchet.SignedPreKey; kind <= ratchet.KEMOneTime; kind++ {
		keys, err := st.PreKeys(ctx, uint8(kind))
		must(t, err)
		for _, k := range keys {
			// u8 version ‖ bytes16 public ‖ bytes8 secret
			b := k.Private
			off := 3 + int(binary.BigEndian.Uint16(b[1:3]))
			n := int(b[off])
			s.add(u.name+" "+kind.String()+" "+strconv.Itoa(int(k.ID))+" secret", b[off+1:off+1+n])
		}
	}
	contacts, err := st.Contacts(ctx)
	must(t, err)
	for _, ct := range contacts {
		sessions, err := st.Sessions(ctx, ct.CardID)
		must(t, err)
		for _, ss := range sessions {
			for label, k := range sessionSecrets(t, ss.State) {
				s.add(u.name+" "+tag+" session "+ss.ID[:8]+" "+label, k)
			}
		}
	}
	atts, err := st.AttachmentsIn(ctx)
	must(t, err)
	for _, a := range atts {
		var m attachmentMeta
		must(t, json.Unmarshal(a.Meta, &m))
		s.add(u.name+" attachment "+a.ClientID+" key", m.Key)
	}
}

// sessionSecrets takes the secret fields out of a session state in the layout of
// ratchet.Session.MarshalBinary.
func sessionSecrets(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	flags := b[1]
	out := map[string][]byte{"RK": b[98:130]}
	off := 130
	take := func(label string, secret bool) {
		if secret {
			out[label] = b[off : off+32]
		}
		off += 32
	}
	if flags&8 != 0 { // DHs
		take("DHs private", true)
		take("DHs public", false)
	}
	if flags&16 != 0 { // DHr
		take("DHr", false)
	}
	if flags&32 != 0 {
		take("CKs", true)
	}
	if flags&64 != 0 {
		take("CKr", true)
	}
	off += 5*4 + 2
	off += 2 + int(binary.BigEndian.Uint16(b[off:off+2])) // initial header
	n := int(binary.BigEndian.Uint16(b[off : off+2]))
	off += 2
	for i := range n {
		out["skipped MK "+strconv.Itoa(i)] = b[off+36 : off+68]
		off += 68
	}
	return out
}

// sealedValues reads the sealed columns of the store at path straight from SQLite
// (the bytes as they are on disk): label → sealed value.
func sealedValues(t *testing.T, path, tag string, into secrets) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	must(t, err)
	defer db.Close()
	for _, q := range []struct{ label, query string }{
		{"session", "SELECT id, state_sealed FROM sessions"},
		{"prekey", "SELECT kind || '/' || id, private_sealed FROM prekeys"},
		{"identity", "SELECT 1, private_key_sealed FROM identity"},
	} {
		rows, err := db.Query(q.query)
		must(t, err)
		for rows.Next() {
			var id string
			var v []byte
			must(t, rows.Scan(&id, &v))
			// Version, nonce and the first 16 bytes of ciphertext: unique to this
			// sealing.
			into.add(tag+" sealed "+q.label+" "+id, v[:min(len(v), 41)])
		}
		must(t, rows.Err())
		rows.Close()
	}
}

// scanTree fails the test for each file under dir holding any of s (as it is, in hex or
// in base64), and for each file or directory whose mode lets anyone but its owner in
// (dir itself only when ownDir: pfschat made it).
func scanTree(t *testing.T, when, dir string, ownDir bool, s secrets) (files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if (path != dir || ownDir) && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %s has mode %v: others may read it", when, path, fi.Mode().Perm())
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for label, v := range s {
			if bytes.Contains(b, v) {
				t.Errorf("%s: %s found in the clear in %s", when, label, path)
			}
			if h := []byte(hex.EncodeToString(v)); bytes.Contains(bytes.ToLower(b), h) {
				t.Errorf("%s: %s found in hex in %s", when, label, path)
			}
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				// The first 15 bytes encode to 20 characters whatever follows them.
				if bytes.Contains(b, []byte(enc.EncodeToString(v[:15]))) {
					t.Errorf("%s: %s found in base64 in %s", when, label, path)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// An attacker who reads the disk after the fact (or another local user, or whoever reads
// the logs) finds no secret in the clear anywhere pfschat writes: two real profiles
// that exchanged messages and a file, their debug logs, a backup, the relay's database
// and blob files. Every file and directory is the owner's alone although the umask lets
// everything through. Keys replaced along the way (sessions ratcheted on, one-time
// prekeys used) do not survive in the clear either, nor as sealed copies in the
// closed profile's free pages (secure_delete): with the passphrase a thief could open
// those, and forward secrecy would be gone.
func TestNoSecretOnDiskInTheClear(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	logDir := filepath.Join(t.TempDir(), "logs")
	must(t, os.Mkdir(logDir, 0o700))
	logTo := func(name string) *slog.Logger {
		f, err := os.OpenFile(filepath.Join(logDir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		must(t, err)
		t.Cleanup(func() { f.Close() })
		return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r := relaytest.StartWith(t, relaytest.Options{Logger: logTo("relay.log")})
	withLog := func(name string) func(*Profile) {
		return func(p *Profile) { p.Prefs.Logger = logTo(name + ".log") }
	}
	alice, bob := newUser(t, r, "alice", withLog("alice")), newUser(t, r, "bob", withLog("bob"))
	ctx := attachCtx(t)

	s := secrets{"passphrase": testPass}
	for _, u := range []*user{alice, bob} {
		// The recovery code, shown once, and the proof the relay sees of it: the relay
		// keeps only a keyed hash of the proof.
		text := u.c.TakeRecoveryCode()
		code, err := relay.ParseRecoveryCode(text)
		must(t, err)
		s.add(u.name+" recovery code", []byte(text))
		s.add(u.name+" recovery code, no dashes", []byte(strings.ReplaceAll(text, "-", "")))
		s.add(u.name+" recovery proof", code.Proof(u.name))
	}
	for _, u := range []*user{alice, bob} {
		collectSecrets(t, u, "created", s)
	}
	sealedBefore := secrets{}
	sealed := func(tag string, into secrets) {
		for _, u := range []*user{alice, bob} {
			sealedValues(t, u.p.StorePath(), u.name+" "+tag, into)
		}
	}
	sealed("created", sealedBefore)

	marker := func(label string) string {
		b := make([]byte, 12)
		rand.Read(b)
		return label + "-" + hex.EncodeToString(b)
	}
	converse(t, alice, bob)
	for i := range 3 {
		text := marker("plaintext from alice " + strconv.Itoa(i))
		s.add("message text "+strconv.Itoa(i), []byte(text))
		_, err := alice.c.Send(ctx, "bob", text)
		must(t, err)
		waitReceived(t, bob.c, "alice", text)
		collectSecrets(t, alice, "alice sent "+strconv.Itoa(i), s)
		collectSecrets(t, bob, "alice sent "+strconv.Itoa(i), s)
		reply := marker("plaintext from bob " + strconv.Itoa(i))
		s.add("reply text "+strconv.Itoa(i), []byte(reply))
		_, err = bob.c.Send(ctx, "alice", reply)
		must(t, err)
		waitReceived(t, alice.c, "bob", reply)
		collectSecrets(t, alice, "bob sent "+strconv.Itoa(i), s)
		collectSecrets(t, bob, "bob sent "+strconv.Itoa(i), s)
		sealed("round "+strconv.Itoa(i), sealedBefore)
	}

	// A file: its key, its name and its bytes.
	src, down := t.TempDir(), t.TempDir()
	content := []byte(marker("file content") + strings.Repeat(" padding", 200))
	name := marker("secret-name") + ".txt"
	caption := marker("caption")
	s.add("file content", content[:40])
	s.add("file name", []byte(name))
	s.add("caption", []byte(caption))
	_, err := alice.c.SendFile(ctx, "bob", writeFile(t, src, name, content), caption, nil)
	must(t, err)
	m := waitAttachment(t, bob.c, "alice")
	collectSecrets(t, alice, "file", s)
	collectSecrets(t, bob, "file", s)
	_, err = bob.c.Download(ctx, m.ID, down, nil)
	must(t, err)

	backupDir := filepath.Join(t.TempDir(), "backups")
	must(t, os.Mkdir(backupDir, 0o700))
	must(t, alice.p.Backup(ctx, filepath.Join(backupDir, "alice.backup"), testPass))

	dirs := []string{alice.p.Dir, bob.p.Dir, filepath.Dir(r.Path), logDir, backupDir}
	scanAll := func(when string, s secrets) (files int) {
		for _, d := range dirs {
			files += scanTree(t, when, d, d == alice.p.Dir || d == bob.p.Dir, s)
		}
		return files
	}
	scanAll("open", s)

	// Closed: the store's last sealed values are the only ones left in its file.
	alice.close()
	bob.close()
	r.Close()
	sealedNow := secrets{}
	sealed("now", sealedNow)
	for label, v := range sealedBefore {
		for _, w := range sealedNow {
			if bytes.Equal(v, w) {
				delete(sealedBefore, label)
				break
			}
		}
	}
	if len(sealedBefore) == 0 {
		t.Fatal("no sealed value was replaced: the test shows nothing")
	}
	files := scanAll("closed", s)
	if files < 6 {
		t.Fatalf("only %d files scanned", files)
	}
	scanAll("closed, replaced sealed values", sealedBefore)
	t.Logf("%d secrets, %d replaced sealed values, %d files", len(s), len(sealedBefore), files)
}

// A restore into an empty directory made beforehand by hand (mkdir gives 0755 under the
// usual umask) makes it owner-only, as creating a profile does: the profile's
// directory holds its socket, its attachments being assembled and the store.
func TestRestoreMakesTheDirectoryOwnerOnly(t *testing.T) {
	r := relaytest.Start(t)
	alice := newUser(t, r, "alice")
	alice.close()
	ctx := attachCtx(t)
	backup := filepath.Join(t.TempDir(), "alice.backup")
	must(t, alice.p.Backup(ctx, backup, testPass))

	home := filepath.Join(t.TempDir(), "new-profile")
	must(t, os.Mkdir(home, 0o755))
	must(t, os.Chmod(home, 0o755))
	p := alice.p
	p.Dir = home
	must(t, p.Restore(ctx, backup, testPass))
	scanTree(t, "restored", home, true, nil)
}

// Keys, prekeys, ratchet keys and recovery codes come from crypto/rand only: nothing a
// caller of chat sets (a profile, its preferences) can hand the controller another
// source of randomness.
func TestNoRandomnessButCryptoRand(t *testing.T) {
	reader := reflect.TypeFor[io.Reader]()
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for f := range typ.Fields() {
			if !f.IsExported() {
				continue
			}
			if f.Type.Implements(reader) {
				t.Errorf("%s.%s (%s) lets a caller choose where keys' randomness comes from", path, f.Name, f.Type)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(path+"."+f.Name, f.Type)
			}
		}
	}
	walk("Profile", reflect.TypeFor[Profile]())
}
