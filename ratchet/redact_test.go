package ratchet

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretsNeverFormatted(t *testing.T) {
	alice, _, a, _ := pair(t, 700)
	var secrets [][]byte
	kb, _ := a.key.MarshalBinary()
	secrets = append(secrets, kb[1:33], kb[33:], a.spk.secret, alice.rk[:], alice.cks[:], alice.dhsPriv[:])
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	for _, v := range []any{alice, a.key, a.spk} { // the APIs only hand out pointers
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		log.Info("x", "v", v)
	}
	text := out.String()
	for _, s := range secrets {
		for _, enc := range []string{hex.EncodeToString(s), fmt.Sprint(s), fmt.Sprintf("%v", s[:8])} {
			if strings.Contains(text, strings.Trim(enc, "[]")) {
				t.Fatalf("secret leaked into formatted output")
			}
		}
	}
}
