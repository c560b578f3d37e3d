package ratchet

import (
	"encoding/binary"
)

// The binary encodings of this package are built from a few primitives, all
// big endian:
//
//	u8, u16, u32          unsigned integers of 1, 2, 4 bytes
//	i64                   two's complement 8 bytes (Unix seconds)
//	bytes8  / str8        u8 length ‖ bytes
//	bytes16 / str16       u16 length ‖ bytes
//	bytes32               u32 length ‖ bytes
//	fixed[n]              exactly n bytes, no length
//
// Decoders check every length against the field's limit before reading, and
// reject trailing bytes.

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendI64(b []byte, v int64) []byte  { return binary.BigEndian.AppendUint64(b, uint64(v)) }

func appendBytes8(b, v []byte) []byte {
	b = append(b, byte(len(v)))
	return append(b, v...)
}

func appendBytes16(b, v []byte) []byte {
	b = appendU16(b, uint16(len(v)))
	return append(b, v...)
}

// reader decodes the primitives above. The first failure sticks: later reads
// return zero values, and err reports the first problem with the field name.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail(errf(ErrMalformed, "%s: truncated (need %d bytes, have %d)", field, n, len(r.b)))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(field string) uint8 {
	v := r.take(1, field)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16(field string) uint16 {
	v := r.take(2, field)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *reader) u32(field string) uint32 {
	v := r.take(4, field)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *reader) i64(field string) int64 {
	v := r.take(8, field)
	if v == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (r *reader) checkMax(n, max int, field string) bool {
	if r.err != nil {
		return false
	}
	if n > max {
		r.fail(errf(ErrOversize, "%s: %d bytes, limit %d", field, n, max))
		return false
	}
	return true
}

func (r *reader) bytes8(max int, field string) []byte {
	n := int(r.u8(field))
	if !r.checkMax(n, max, field) {
		return nil
	}
	return r.take(n, field)
}

func (r *reader) bytes16(max int, field string) []byte {
	n := int(r.u16(field))
	if !r.checkMax(n, max, field) {
		return nil
	}
	return r.take(n, field)
}

func (r *reader) bytes32(max int, field string) []byte {
	n := r.u32(field)
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.fail(errf(ErrOversize, "%s: %d bytes, limit %d", field, n, max))
		return nil
	}
	return r.take(int(n), field)
}

// exact reads a length-prefixed (u16) field that must have exactly n bytes.
func (r *reader) exact16(n int, field string) []byte {
	v := r.bytes16(n, field)
	if r.err == nil && len(v) != n {
		r.fail(errf(ErrMalformed, "%s: %d bytes, want %d", field, len(v), n))
		return nil
	}
	return v
}

// version reads a version byte and checks it.
func (r *reader) version(want uint8, what string) {
	v := r.u8(what) // the field name is only formatted on failure
	if r.err == nil && v != want {
		r.fail(errf(ErrUnknownVersion, "%s version %d (this build speaks %d)", what, v, want))
	}
}

// done reports the first error, or ErrTrailingBytes if input is left over.
func (r *reader) done(what string) error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return errf(ErrTrailingBytes, "%s: %d bytes after the end", what, len(r.b))
	}
	return nil
}
