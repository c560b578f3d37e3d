package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"pfschat/storage"
)

// A queued message is stored in the stream as an envelope: the recipient is the
// subject, the id is the stream sequence, and the data is
//
//	version     1 byte (1)
//	from        uvarint length, bytes (1..maxField)
//	from_card   uvarint length, bytes (0..maxField)
//	client_id   uvarint length, bytes (1..maxField)
//	received_at 8 bytes big-endian Unix nanoseconds
//	expires_at  8 bytes big-endian Unix nanoseconds (0: never)
//	body        the rest
const envelopeVersion = 1

// maxField bounds each string of an envelope.
const maxField = 255

// ErrBadEnvelope is returned for stored data that is not a valid envelope (a damaged
// or foreign message in the stream).
var ErrBadEnvelope = errors.New("cluster: bad queued message envelope")

// appendEnvelope appends m's envelope to b.
func appendEnvelope(b []byte, m *storage.QueuedMessage) ([]byte, error) {
	if len(m.From) == 0 || len(m.From) > maxField || len(m.FromCardID) > maxField || len(m.ClientID) == 0 || len(m.ClientID) > maxField {
		return b, fmt.Errorf("%w: from, from_card and client_id must be 1..%d bytes", storage.ErrInvalid, maxField)
	}
	b = append(b, envelopeVersion)
	for _, s := range [...]string{m.From, m.FromCardID, m.ClientID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(m.ReceivedAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(m.ExpiresAt)))
	return append(b, m.Body...), nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// parseEnvelope decodes data into m (To and ID are the caller's). m.Body aliases data.
func parseEnvelope(data []byte, m *storage.QueuedMessage) error {
	if len(data) < 1 {
		return fmt.Errorf("%w: empty", ErrBadEnvelope)
	}
	if data[0] != envelopeVersion {
		return fmt.Errorf("%w: version %d", ErrBadEnvelope, data[0])
	}
	p := data[1:]
	var fields [3]string
	names := [3]string{"from", "from_card", "client_id"}
	for i := range fields {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > maxField || uint64(len(p)-k) < n {
			return fmt.Errorf("%w: %s length", ErrBadEnvelope, names[i])
		}
		fields[i] = string(p[k : k+int(n)])
		p = p[k+int(n):]
	}
	if fields[0] == "" || fields[2] == "" {
		return fmt.Errorf("%w: empty from or client_id", ErrBadEnvelope)
	}
	if len(p) < 16 {
		return fmt.Errorf("%w: truncated times", ErrBadEnvelope)
	}
	m.From, m.FromCardID, m.ClientID = fields[0], fields[1], fields[2]
	m.ReceivedAt = fromUnixNano(int64(binary.BigEndian.Uint64(p)))
	m.ExpiresAt = fromUnixNano(int64(binary.BigEndian.Uint64(p[8:])))
	m.Body = p[16:]
	return nil
}
