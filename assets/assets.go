// Package assets embeds pfschat's non-code resources: the logo, the colour themes, the
// help text and the demo script. Everything is compiled into the binary, so `go run .
// demo` needs no files next to it.
//
// The UI reads them through the functions below; edit the files in this folder to change
// what people see without touching Go code.
package assets

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
)

//go:embed logo.txt
var logo string

//go:embed help.txt
var help string

//go:embed demo.txt
var demo string

//go:embed theme.json
var themeJSON []byte

// Logo is the banner shown on the onboarding and unlock screens.
func Logo() string { return strings.TrimRight(logo, "\n") }

// Help is the text of the help dialog under the key bindings and slash commands (the marks legend).
func Help() string { return strings.TrimRight(help, "\n") }

// DemoScript is the list of messages the demo's echo contact sends when the demo starts,
// one per non-empty line.
func DemoScript() []string {
	var out []string
	for _, l := range strings.Split(demo, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// Palette is a set of colours (hex strings like "#7D56F4") for one background.
type Palette struct {
	Text, Muted, Subtle, Accent, AccentText, Mine, Theirs, OK, Warn, Danger, Border, Selection, SelectionText string
}

// Theme holds one palette for light and one for dark backgrounds; the UI picks one from
// the terminal's reported background colour.
type Theme struct {
	Name  string
	Light Palette
	Dark  Palette
}

// Themes parses the embedded themes; the first one is the default.
func Themes() ([]Theme, error) {
	var ts []Theme
	if err := json.Unmarshal(themeJSON, &ts); err != nil {
		return nil, fmt.Errorf("assets: theme.json: %w", err)
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("assets: theme.json holds no theme")
	}
	return ts, nil
}
