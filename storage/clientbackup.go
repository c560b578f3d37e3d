package storage

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// A profile backup (pfschat backup FILE) is the client store, copied with VACUUM INTO
// while it may be in use, then sealed as a whole under a key derived from the profile's
// passphrase: names, times and delivery states, which the store keeps in the clear,
// are sealed too. The format (README, "Backup"):
//
//	magic       16 bytes  "PFSCHAT-BACKUP\x00" ‖ version 0x01
//	kdf         9 bytes   Argon2id time (u32 BE) ‖ memory KiB (u32 BE) ‖ lanes (u8)
//	salt        16 bytes
//	nonce       16 bytes  prefix of every chunk's nonce
//	chunks      each: length (u32 BE, 16..backupChunk+16) ‖ XChaCha20-Poly1305(key,
//	            nonce ‖ index (u64 BE, from 0), plaintext of at most backupChunk bytes,
//	            ad = the 57 header bytes ‖ final (0x01 for the last chunk, else 0x00))
//
// key = Argon2id(passphrase, salt, time, memory, lanes, 32 bytes). The last chunk (it
// may be empty) is marked final and nothing may follow it, so a cut, reordered or
// extended file does not open.

const (
	backupMagic     = "PFSCHAT-BACKUP\x00\x01"
	backupHeaderLen = 16 + 9 + 16 + 16
	backupChunk     = 1 << 20
)

// ErrBadBackup: the file is not a pfschat profile backup, or it was cut or altered.
var ErrBadBackup = errors.New("storage: not a pfschat profile backup, or a damaged one")

// backupWriter seals a stream of plaintext into the backup format.
type backupWriter struct {
	w      io.Writer
	aead   cipherAEAD
	header []byte
	prefix []byte
	index  uint64
	buf    []byte
}

type cipherAEAD interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	Overhead() int
}

func backupNonce(prefix []byte, i uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), i)
}

func backupAD(header []byte, final bool) []byte {
	ad := append([]byte(nil), header...)
	if final {
		return append(ad, 1)
	}
	return append(ad, 0)
}

// newBackupWriter writes the header; rnd gives the salt and nonce prefix.
func newBackupWriter(w io.Writer, pass []byte, p KDFParams, rnd io.Reader) (*backupWriter, error) {
	if len(pass) == 0 {
		return nil, ErrEmptyPassphrase
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	h := make([]byte, 0, backupHeaderLen)
	h = append(h, backupMagic...)
	h = binary.BigEndian.AppendUint32(h, p.Time)
	h = binary.BigEndian.AppendUint32(h, p.MemoryKiB)
	h = append(h, p.Threads)
	salt := make([]byte, 32)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return nil, fmt.Errorf("storage: backup salt: %w", err)
	}
	h = append(h, salt...)
	key := deriveKEK(pass, salt[:saltSize], p)
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(h); err != nil {
		return nil, err
	}
	return &backupWriter{w: w, aead: aead, header: h, prefix: salt[saltSize:], buf: make([]byte, 0, backupChunk)}, nil
}

func (b *backupWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), backupChunk-len(b.buf))
		b.buf = append(b.buf, p[:k]...)
		p = p[k:]
		if len(b.buf) == backupChunk && len(p) > 0 {
			if err := b.flush(false); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (b *backupWriter) flush(final bool) error {
	ct := b.aead.Seal(nil, backupNonce(b.prefix, b.index), b.buf, backupAD(b.header, final))
	b.index++
	b.buf = b.buf[:0]
	if _, err := b.w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(ct)))); err != nil {
		return err
	}
	_, err := b.w.Write(ct)
	return err
}

// Close seals the last chunk, marked final.
func (b *backupWriter) Close() error { return b.flush(true) }

// openBackup decrypts a backup read from r into w. A wrong passphrase is
// ErrWrongPassphrase (the first chunk does not open); anything malformed, cut,
// reordered or extended is ErrBadBackup. It never panics.
func openBackup(r io.Reader, w io.Writer, pass []byte) error {
	br := bufio.NewReader(r)
	h := make([]byte, backupHeaderLen)
	if _, err := io.ReadFull(br, h); err != nil {
		return fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	if string(h[:16]) != backupMagic {
		return fmt.Errorf("%w: wrong magic (or a newer backup version)", ErrBadBackup)
	}
	p := KDFParams{Time: binary.BigEndian.Uint32(h[16:]), MemoryKiB: binary.BigEndian.Uint32(h[20:]), Threads: h[24]}
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	key := deriveKEK(pass, h[25:25+saltSize], p)
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return err
	}
	prefix := h[25+saltSize:]
	ct := make([]byte, 0, backupChunk+aead.Overhead())
	var pt []byte
	for i := uint64(0); ; i++ {
		var lb [4]byte
		if _, err := io.ReadFull(br, lb[:]); err != nil {
			return fmt.Errorf("%w: cut after chunk %d (no final chunk)", ErrBadBackup, i)
		}
		n := binary.BigEndian.Uint32(lb[:])
		if n < uint32(aead.Overhead()) || n > uint32(backupChunk+aead.Overhead()) {
			return fmt.Errorf("%w: chunk %d has length %d", ErrBadBackup, i, n)
		}
		ct = ct[:n]
		if _, err := io.ReadFull(br, ct); err != nil {
			return fmt.Errorf("%w: chunk %d is cut", ErrBadBackup, i)
		}
		final := false
		pt, err = aead.Open(pt[:0], backupNonce(prefix, i), ct, backupAD(h, false))
		if err != nil {
			final = true
			pt, err = aead.Open(pt[:0], backupNonce(prefix, i), ct, backupAD(h, true))
		}
		if err != nil {
			if i == 0 {
				return fmt.Errorf("%w: the backup does not open with this passphrase (or it is damaged)", ErrWrongPassphrase)
			}
			return fmt.Errorf("%w: chunk %d does not open (altered or reordered)", ErrBadBackup, i)
		}
		if _, err := w.Write(pt); err != nil {
			return err
		}
		if final {
			if _, err := br.ReadByte(); err != io.EOF {
				return fmt.Errorf("%w: data after the final chunk", ErrBadBackup)
			}
			return nil
		}
	}
}

// plainCopySuffix names a backup's plain copy beside the store (after the store's file
// name; the * is CreateTemp's and filepath.Glob's).
const plainCopySuffix = ".backup-*.tmp"

// BackupClient writes a sealed copy of the client store at src to dst, a new file
// (never overwritten; owner-only), while another process may have the store open: the
// copy is SQLite's VACUUM INTO, one consistent snapshot. pass must unlock the store
// (ErrWrongPassphrase otherwise; a store without a passphrase, the demo's, has no
// backup); the backup is sealed under Argon2id(pass) with the store's current
// parameters (fresh salt). On failure dst is removed; the plain copy made on the way
// lives owner-only beside the store (never beside dst) and is removed in any case.
func BackupClient(ctx context.Context, src, dst string, pass []byte) (err error) {
	if len(pass) == 0 {
		return fmt.Errorf("%w: a profile without a passphrase (the demo's) has no backup", ErrEmptyPassphrase)
	}
	if src, err = filepath.Abs(src); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	if dst, err = filepath.Abs(dst); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	if strings.ContainsAny(src, "?#") {
		return fmt.Errorf("%w: store path %q must not contain '?' or '#'", ErrInvalid, src)
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("storage: backup: the profile: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%w: %s; a backup never overwrites a file: choose a new name", ErrExists, dst)
	}
	d, err := openBackupSource(ctx, src, clientKind, "a pfschat profile")
	if err != nil {
		return err
	}
	defer d.Close()
	w, err := readKeyring(ctx, d)
	if err != nil {
		return err
	}
	if w.demo {
		return fmt.Errorf("%w: a profile without a passphrase (the demo's) has no backup", ErrEmptyPassphrase)
	}
	key, err := w.unwrap(pass)
	if err != nil {
		return err
	}
	clear(key)

	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s; a backup never overwrites a file: choose a new name", ErrExists, dst)
	}
	if err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("storage: backup: %w", cerr)
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	// The plain copy (sealed values, but names and times in the clear, as the store
	// keeps them) is made beside the store, never beside dst: a backup goes to a USB
	// stick or a synced folder, where even a removed file may be read or uploaded, and
	// a copy left by a kill would stay.
	// It is held (flock) while the backup runs, so a later backup removes one a kill
	// left behind and never one in use.
	removeStalePlainCopies(src)
	var f *os.File
	for {
		if f, err = os.CreateTemp(filepath.Dir(src), filepath.Base(src)+plainCopySuffix); err != nil { // 0600
			return fmt.Errorf("storage: backup: %w", err)
		}
		if holdPlainCopy(f, f.Name()) {
			break
		}
		f.Close()
	}
	plain := f.Name()
	defer f.Close()
	defer os.Remove(plain)
	defer os.Remove(plain + "-journal")
	if _, err := d.ExecContext(ctx, "VACUUM INTO ?", plain); err != nil {
		return fmt.Errorf("storage: backup: VACUUM INTO: %w", err)
	}
	pf, err := os.Open(plain)
	if err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	defer pf.Close()
	bw, err := newBackupWriter(out, pass, w.params, rand.Reader)
	if err != nil {
		return err
	}
	if _, err := io.Copy(bw, pf); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	if err := bw.Close(); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("storage: backup: sync: %w", err)
	}
	return nil
}

// RestoreClient writes the store held in the backup src to dst, which must not exist
// (a restore never replaces a profile). pass is the passphrase the backup was made
// with; the restored store opens with it. Every ratchet session of the copy is
// dropped: its chains may have moved on since the backup, and sending from an older
// state would use a message key twice. The next message to or from each contact starts
// a new session. On failure nothing is left at dst.
func RestoreClient(ctx context.Context, src, dst string, pass []byte) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	defer in.Close()
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%w: %s exists; a restore never replaces a profile", ErrExists, dst)
	}
	tmp := dst + ".restore-tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	defer func() {
		// Whatever happened, nothing of the attempt stays: the copy, and the journal
		// files opening it for the checks may have left.
		for _, sfx := range []string{"", "-wal", "-shm"} {
			os.Remove(tmp + sfx)
		}
	}()
	bw := bufio.NewWriter(f)
	err = openBackup(in, bw, pass)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if !IsSQLiteFile(tmp) {
		return fmt.Errorf("%w: the sealed content is not a database", ErrBadBackup)
	}
	c, err := OpenClient(ctx, tmp, pass)
	if err != nil {
		return fmt.Errorf("storage: restore: the backup's profile: %w", err)
	}
	err = c.IntegrityCheck(ctx)
	if err == nil {
		err = c.DeleteSessions(ctx, "")
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		os.Remove(tmp + sfx) // before the link: the profile must not find the copy's
	}
	if err := os.Link(tmp, dst); err != nil { // never replaces: fails if dst appeared
		return fmt.Errorf("storage: restore: %w", err)
	}
	return nil
}
