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
