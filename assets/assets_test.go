package assets

import (
	"reflect"
	"regexp"
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
