package ui

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
