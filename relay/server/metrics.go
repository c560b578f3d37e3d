package server

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"pfschat/relay"
)

// metrics are the relay's counters, exported at /metrics in the Prometheus text format.
// Everything on a hot path is a fixed-slot atomic; nothing allocates per frame.
type metrics struct {
	connections   atomic.Int64
	loggedIn      atomic.Int64
	framesIn      [len(metricFrameTypes) + 1]atomic.Uint64
	framesOut     [len(metricFrameTypes) + 1]atomic.Uint64
	errors        [len(metricErrorCodes) + 1]atomic.Uint64
	accepted      atomic.Uint64
	duplicates    atomic.Uint64
	delivered     atomic.Uint64
	acked         atomic.Uint64
	slowReaders   atomic.Uint64
	blob          blobMetrics     // blobs.go
	limitedBy     limitedCounters // abuse limits applied, by limit name (limits.go)
	commitLatency histogram
	commitBatch   histogram
	ackLatency    histogram
	// deliverLatency: a live delivery's send frame read → its deliver push encoded
	deliverLatency histogram
}

var metricFrameTypes = [...]string{
	relay.TypeHello, relay.TypeRegister, relay.TypeLogin, relay.TypeLogoutAll, relay.TypeLookup, relay.TypeUploadPreKeys,
	relay.TypePreKeyStatus, relay.TypeFetchBundle, relay.TypeReplaceCard, relay.TypeSend, relay.TypeAck, relay.TypePing,
	relay.TypeOK, relay.TypeError, relay.TypeCard, relay.TypeBundle, relay.TypeAccepted, relay.TypeDeliver, relay.TypeSynced,
	relay.TypeLowPreKeys, relay.TypeGoingAway, relay.TypePong, relay.TypeLimitNotice,
	relay.TypeDeleteAccount,
	relay.TypeBlock, relay.TypeUnblock,
	relay.TypeRecover, relay.TypeSetRecovery,
	relay.TypeLookupCard,
}

var metricErrorCodes = [...]string{
	relay.CodeBadFrame, relay.CodeFrameTooLarge, relay.CodeUnknownType, relay.CodeBadField, relay.CodeUnsupportedVersion,
	relay.CodeNotLoggedIn, relay.CodeAlreadyLoggedIn, relay.CodeLoginFailed, relay.CodeInvalidName,
	relay.CodeNameTaken, relay.CodeBadCard, relay.CodeForbidden, relay.CodeCardReplaced, relay.CodeNotFound, relay.CodeNoPreKeys, relay.CodeBadPreKey,
	relay.CodeTooManyPreKeys, relay.CodeQueueFull, relay.CodeTTLTooLong, relay.CodeRateLimited, relay.CodeSlowReader,
	relay.CodeGoingAway, relay.CodeInternal,
	relay.CodeLoggedOut,
	relay.CodeLoginTimeout, relay.CodeMessageTimeout, relay.CodeTooManyConnections, relay.CodeRegistrationClosed, relay.CodeInviteRequired,
	relay.CodeStorageFull, relay.CodeAccountDeleted, relay.CodeBadTime,
	relay.CodeBlocked, relay.CodeTooManyBlocks,
	relay.CodeRecoveryFailed, relay.CodeNoRecovery,
}

var (
	frameTypeIndex = indexOf(metricFrameTypes[:])
	errorCodeIndex = indexOf(metricErrorCodes[:])
)

func indexOf(list []string) map[string]int {
	m := make(map[string]int, len(list))
	for i, s := range list {
		m[s] = i
	}
	return m
}

func slot(index map[string]int, s string, other int) int {
	if i, ok := index[s]; ok {
		return i
	}
	return other
}

func (m *metrics) frameIn(typ string) {
	m.framesIn[slot(frameTypeIndex, typ, len(metricFrameTypes))].Add(1)
}

func (m *metrics) frameOut(typ string) {
	m.framesOut[slot(frameTypeIndex, typ, len(metricFrameTypes))].Add(1)
}

func (m *metrics) errorSent(code string) {
	m.errors[slot(errorCodeIndex, code, len(metricErrorCodes))].Add(1)
}

// histogram is a fixed-bucket Prometheus histogram.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1, last is +Inf
	sum    atomic.Uint64   // in units of 1e-9 (nanoseconds for latency)
	n      atomic.Uint64
}

func newHistogram(bounds ...float64) histogram {
	return histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i].Add(1)
	h.sum.Add(uint64(v * 1e9))
	h.n.Add(1)
}

func newMetrics() *metrics {
	return &metrics{
		commitLatency:  newHistogram(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
		commitBatch:    newHistogram(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
		ackLatency:     newHistogram(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
		deliverLatency: newHistogram(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
	}
}

// write renders the metrics. queueDepth is read from the store at scrape time.
func (m *metrics) write(ctx context.Context, w io.Writer, queueDepth func(context.Context) (int, error)) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# HELP pfschat_relay_connections Open WebSocket connections.\n# TYPE pfschat_relay_connections gauge\n")
	p("pfschat_relay_connections %d\n", m.connections.Load())
	p("# HELP pfschat_relay_logged_in Connections logged in to a card.\n# TYPE pfschat_relay_logged_in gauge\n")
	p("pfschat_relay_logged_in %d\n", m.loggedIn.Load())
	if queueDepth != nil {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		depth, err := queueDepth(qctx)
		cancel()
		if err == nil {
			p("# HELP pfschat_relay_queue_depth Messages stored and not yet acknowledged.\n# TYPE pfschat_relay_queue_depth gauge\n")
			p("pfschat_relay_queue_depth %d\n", depth)
		}
	}
	counterVec := func(name, help, label string, names []string, vals []atomic.Uint64) {
		p("# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for i := range vals {
			v := vals[i].Load()
			if v == 0 {
				continue
			}
			lv := "other"
			if i < len(names) {
				lv = names[i]
			}
			p("%s{%s=%q} %d\n", name, label, lv, v)
		}
	}
	counterVec("pfschat_relay_frames_in_total", "Frames received, by type.", "type", metricFrameTypes[:], m.framesIn[:])
	counterVec("pfschat_relay_frames_out_total", "Frames sent, by type.", "type", metricFrameTypes[:], m.framesOut[:])
	counterVec("pfschat_relay_errors_total", "Error frames sent, by code.", "code", metricErrorCodes[:], m.errors[:])
	counterVec("pfschat_relay_limited_total", "Abuse limits applied, by limit name (PROTOCOL.md: Limits; Limits and abuse; Blobs; recovery's Limits).", "limit", metricLimitNames[:], m.limitedBy[:])
	counter := func(name, help string, v uint64) {
		p("# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("pfschat_relay_messages_accepted_total", "Messages made durable and answered accepted.", m.accepted.Load())
	counter("pfschat_relay_messages_duplicate_total", "Sends answered accepted as duplicates of a stored client id.", m.duplicates.Load())
	counter("pfschat_relay_messages_delivered_total", "Deliver pushes written to recipients.", m.delivered.Load())
	counter("pfschat_relay_messages_acked_total", "Message ids acknowledged by recipients.", m.acked.Load())
	counter("pfschat_relay_slow_reader_disconnects_total", "Connections closed because their outbound queue overflowed.", m.slowReaders.Load())
	m.commitLatency.write(p, "pfschat_relay_commit_seconds", "Duration of one group-commit transaction.")
	m.ackLatency.write(p, "pfschat_relay_ack_commit_seconds", "Duration of one transaction deleting acknowledged messages.")
	m.commitBatch.write(p, "pfschat_relay_commit_batch_size", "Messages per group-commit transaction.")
	m.deliverLatency.write(p, "pfschat_relay_deliver_seconds", "From a send frame read to its deliver push encoded for a connected recipient (live deliveries), the group commit included.")
	m.blob.write(p)
}

// Histogram is a fixed-bucket Prometheus histogram for a store's own figures on the
// admin port (relay/cluster's JetStream publish latency): the relay's own kind.
type Histogram struct{ h histogram }

// NewHistogram returns an empty histogram with these upper bounds, ascending.
func NewHistogram(bounds ...float64) *Histogram { return &Histogram{h: newHistogram(bounds...)} }

// Observe counts one value.
func (h *Histogram) Observe(v float64) { h.h.observe(v) }

// Write prints the histogram in the text exposition format through p.
func (h *Histogram) Write(p func(string, ...any), name, help string) { h.h.write(p, name, help) }

func (h *histogram) write(p func(string, ...any), name, help string) {
	p("# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		p("%s_bucket{le=%q} %d\n", name, strconv.FormatFloat(b, 'g', -1, 64), cum)
	}
	cum += h.counts[len(h.bounds)].Load()
	p("%s_bucket{le=\"+Inf\"} %d\n", name, cum)
	p("%s_sum %s\n", name, strconv.FormatFloat(float64(h.sum.Load())/1e9, 'g', -1, 64))
	p("%s_count %d\n", name, h.n.Load())
}
