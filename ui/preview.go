package ui

import "strings"

// Graphics is the image protocol the terminal speaks, for previews of images.
type Graphics int

const (
	// NoGraphics: no previews (the default; every terminal without a known protocol).
	NoGraphics Graphics = iota
	// KittyGraphics: the kitty graphics protocol with Unicode placeholders (kitty, ghostty).
	KittyGraphics
	// SixelGraphics: DEC sixel (foot, WezTerm, mlterm, contour, xterm with sixel).
	SixelGraphics
)

// DetectGraphics names the image protocol of the terminal the environment describes:
// kitty's for kitty and ghostty, sixel for foot, mlterm, contour and WezTerm, none
// elsewhere and inside tmux or screen (their passthrough is not worth the risk of
// drawing escape sequences as text). PFSCHAT_GRAPHICS=kitty|sixel|none overrides it.
func DetectGraphics(getenv func(string) string) Graphics {
	switch strings.ToLower(getenv("PFSCHAT_GRAPHICS")) {
	case "kitty":
		return KittyGraphics
	case "sixel":
		return SixelGraphics
	case "none", "off":
		return NoGraphics
	}
	term, prog := getenv("TERM"), getenv("TERM_PROGRAM")
	if getenv("TMUX") != "" || strings.HasPrefix(term, "screen") || strings.HasPrefix(term, "tmux") {
		return NoGraphics
	}
	switch {
	case term == "xterm-kitty" || getenv("KITTY_WINDOW_ID") != "" || term == "xterm-ghostty" || prog == "ghostty":
		return KittyGraphics
	case strings.HasPrefix(term, "foot") || strings.HasPrefix(term, "mlterm") || strings.HasPrefix(term, "contour") || prog == "WezTerm":
		return SixelGraphics
	}
	return NoGraphics
}
