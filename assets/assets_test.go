package assets

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var hexColour = regexp.MustCompile(`^#[0-9A-Fa-f]{6}$`)

func TestThemesAreComplete(t *testing.T) {
	ts, err := Themes()
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range ts {
		for _, p := range []Palette{th.Light, th.Dark} {
			v := reflect.ValueOf(p)
			for i := range v.NumField() {
				if c := v.Field(i).String(); !hexColour.MatchString(c) {
					t.Errorf("theme %s: %s = %q, want #RRGGBB", th.Name, v.Type().Field(i).Name, c)
				}
			}
		}
	}
}

func TestEmbeddedText(t *testing.T) {
	if Logo() == "" || Help() == "" {
		t.Fatal("logo or help text missing")
	}
	if len(DemoScript()) == 0 {
		t.Fatal("demo script is empty")
	}
	for _, l := range DemoScript() {
		if l[0] == '#' {
			t.Fatalf("comment line in the demo script: %q", l)
		}
	}
}

// The systemd unit's header says to edit ExecStart (plain ws:// on :443 as shipped)
// before it says to enable and start the service.
func TestRelayUnitSaysEditBeforeEnable(t *testing.T) {
	b, err := os.ReadFile("pfschat-relay.service")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	edit, enable := strings.Index(s, "edit the ExecStart line"), strings.Index(s, "enable --now")
	if edit < 0 || enable < 0 || edit > enable {
		t.Errorf("the unit's header: edit ExecStart at %d, enable --now at %d; want the edit first", edit, enable)
	}
}
