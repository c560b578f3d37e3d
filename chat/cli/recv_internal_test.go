package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"pfschat/chat"
)

// recv marks a message from a changed, not yet accepted identity key in both forms and
// leaves an ordinary message as it was.
func TestRecvLineMarksKeyPending(t *testing.T) {
	m := chat.Message{ID: 7, Contact: "alice", Text: "send money", SentAt: time.Unix(1e9, 0), ReceivedAt: time.Unix(1e9, 0), Seq: 3, KeyPending: true}
	line := recvLine(m, false)
	if !strings.Contains(line, "NEW KEY NOT ACCEPTED") || !strings.Contains(line, "pfschat accept-key alice") || !strings.HasSuffix(line, ": send money\n") {
		t.Errorf("text line %q does not mark the unaccepted key", line)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(recvLine(m, true)), &j); err != nil {
		t.Fatal(err)
	}
	if j["key_pending"] != true {
		t.Errorf("json %v: key_pending not true", j)
	}
	m.KeyPending = false
	if line := recvLine(m, false); strings.Contains(line, "NEW KEY") {
		t.Errorf("ordinary message marked: %q", line)
	}
	var k map[string]any
	if err := json.Unmarshal([]byte(recvLine(m, true)), &k); err != nil {
		t.Fatal(err)
	}
	if _, ok := k["key_pending"]; ok {
		t.Errorf("ordinary message has key_pending: %v", k)
	}
}

// A message the contact's relay refused (a withdrawn notice) prints as not delivered.
func TestRecvLineWithdrawn(t *testing.T) {
	m := chat.Message{ID: 8, Contact: "alice", SentAt: time.Unix(1e9, 0), Seq: 2, State: chat.Failed, Reason: chat.WithdrawnReason}
	if line := recvLine(m, false); !strings.Contains(line, "alice: [a message was not delivered: "+chat.WithdrawnReason+"]") {
		t.Errorf("text line %q", line)
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(recvLine(m, true)), &j); err != nil || j["state"] != "failed" || j["reason"] != chat.WithdrawnReason {
		t.Errorf("json %v (%v)", j, err)
	}
}
