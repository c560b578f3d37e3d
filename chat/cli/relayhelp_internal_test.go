package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestRelayHelpListsSubcommands: pfschat relay --help names every pfschat relay WORD
// (backup, rotate-key, invite, new-key-file and its other name); an operator who
// reads only the help found none of them.
func TestRelayHelpListsSubcommands(t *testing.T) {
	var out bytes.Buffer
	if err := RunRelay(t.Context(), []string{"--help"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for name := range relaySubcommands {
		if !strings.Contains(out.String(), name) {
			t.Errorf("pfschat relay --help does not name pfschat relay %s:\n%s", name, out.String())
		}
	}
}
