package ui

// Image previews (issue 15): an image's dimensions come from its header (chat.ImageSize,
// capped before anything is decoded); where the terminal speaks the kitty graphics
// protocol, a downloaded or sent image also shows as a small picture under its line.
// The picture is transmitted once, off screen (a virtual placement), and drawn with
// kitty's Unicode placeholders: ordinary cells the renderer diffs and scrolls like text,
// so a preview never fights the cell renderer. Sixel cannot be placed in cells: a sixel
// terminal gets its picture on demand instead (/preview: a dialog the picture is drawn
// into once it is on screen, wiped by a full repaint when it closes; sixel.go).
// Elsewhere nothing is drawn and nothing is said.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi/kitty"

	"pfschat/chat"
)

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

// Preview limits.
const (
	previewCols = 32 // cells, at most
	previewRows = 8
	// cellW × cellH pixels per cell: the size the picture is scaled to before it is
	// sent (the terminal scales it to the cells it is given).
	cellW, cellH = 8, 16
	// maxPreviewFile: bigger files get no preview (their dimensions still show).
	maxPreviewFile = 32 << 20
	// maxPreviewBytes caps the decoded pixels of a preview (maxPreviewPixels), under
	// chat.ImageSize's own caps.
	maxPreviewBytes = 64 << 20
)

// maxPreviewPixels is the most pixels decoded for a preview, by format: what fits
// maxPreviewBytes at the format's widest pixel (PNG: 16-bit RGBA, 8 bytes; JPEG:
// 4:4:4 or CMYK, 4 bytes — 3 Mpx for a 12 Mpx phone photo is well inside; GIF: one
// palette index).
var maxPreviewPixels = map[string]int64{"png": maxPreviewBytes / 8, "jpeg": maxPreviewBytes / 4, "gif": maxPreviewBytes}

// previewSlot is held by the preview decoding (one at a time).
var previewSlot = make(chan struct{}, 1)

// ErrNoPreview: the image is not one pfschat previews (not PNG, JPEG or GIF, damaged,
// or over the caps).
var ErrNoPreview = errors.New("ui: no preview for this image")

// decodePreview reads an image for a preview: the header first (chat.ImageSize: PNG,
// JPEG or GIF, dimensions capped; no pixel is decoded before), then, only within
// maxPreviewPixels (at most 64 MiB of pixels; for a JPEG, jpegDecodeBytes, which
// counts a progressive one's coefficients too) and maxPreviewFile, its pixels, scaled
// down to fit maxW×maxH, one image at a time (previewSlot; waiting ends with ctx).
func decodePreview(ctx context.Context, r io.ReadSeeker, maxW, maxH int) (*image.NRGBA, error) {
	w, h, format, err := chat.ImageSize(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoPreview, err)
	}
	if limit := maxPreviewPixels[format]; int64(w)*int64(h) > limit {
		return nil, fmt.Errorf("%w: %d×%d is over %d pixels for a %s preview", ErrNoPreview, w, h, limit, format)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if format == "jpeg" {
		n, err := jpegDecodeBytes(r)
		if err != nil {
			return nil, err
		}
		if n > maxPreviewBytes {
			return nil, fmt.Errorf("%w: decoding this %d×%d JPEG takes %d MiB, over %d MiB", ErrNoPreview, w, h, n>>20, maxPreviewBytes>>20)
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	// One preview decodes at a time: a history page of images would otherwise take
	// 64 MiB each at once.
	select {
	case previewSlot <- struct{}{}:
		defer func() { <-previewSlot }()
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNoPreview, ctx.Err())
	}
	img, got, err := image.Decode(bufio.NewReader(io.LimitReader(r, maxPreviewFile)))
	if err != nil || got != format {
		return nil, fmt.Errorf("%w: %v", ErrNoPreview, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		return nil, fmt.Errorf("%w: the pixels are %v, the header said %d×%d", ErrNoPreview, b, w, h)
	}
	return scaleDown(img, maxW, maxH), nil
}

// jpegDecodeBytes is what decoding the JPEG in r takes, read from its frame header
// (the first SOFn, the one image/jpeg decodes; at most the first MiB is read): the
// decoded pixel at its widest (4 bytes: RGBA or CMYK, as maxPreviewPixels counts it, or
// the samples of every component where they are more), and for a progressive JPEG the
// coefficients image/jpeg keeps for every sample until the last scan: a 256-byte block
// per 8×8 samples, allocated before the first pixel. A stream it cannot follow to a
// frame header is ErrNoPreview.
func jpegDecodeBytes(r io.Reader) (int64, error) {
	br := bufio.NewReader(io.LimitReader(r, 1<<20))
	bad := func(why string) (int64, error) { return 0, fmt.Errorf("%w: JPEG %s", ErrNoPreview, why) }
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil || soi != [2]byte{0xff, 0xd8} {
		return bad("without its start")
	}
	for {
		// Walked as image/jpeg walks it: bytes other than a marker's are skipped, so are
		// FF 00 and fill bytes; the restart markers have no length.
		b, err := br.ReadByte()
		if err != nil {
			return bad("without a frame header")
		}
		if b != 0xff {
			continue
		}
		code, err := br.ReadByte()
		for err == nil && code == 0xff {
			code, err = br.ReadByte()
		}
		switch {
		case err != nil || code == 0xd9 || code == 0xda:
			return bad("without a frame header")
		case code == 0x00 || code >= 0xd0 && code <= 0xd7:
			continue
		}
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil || binary.BigEndian.Uint16(l[:]) < 2 {
			return bad("segment cut short")
		}
		seg := make([]byte, binary.BigEndian.Uint16(l[:])-2)
		if _, err := io.ReadFull(br, seg); err != nil {
			return bad("segment cut short")
		}
		switch {
		case code < 0xc0 || code > 0xcf || code == 0xc4 || code == 0xc8 || code == 0xcc:
			continue // not a frame header
		case code > 0xc2:
			return bad("coding image/jpeg does not decode")
		}
		// P, Y, X, Nf, then Nf × (C, H<<4|V, Tq).
		if len(seg) < 6 || len(seg) < 6+3*int(seg[5]) || seg[5] == 0 {
			return bad("frame header cut short")
		}
		h, w, nc := int64(binary.BigEndian.Uint16(seg[1:])), int64(binary.BigEndian.Uint16(seg[3:])), int(seg[5])
		var hmax, vmax, sum int64 = 1, 1, 0
		for i := range nc {
			hi, vi := int64(seg[7+3*i]>>4), int64(seg[7+3*i]&15)
			if hi == 0 || vi == 0 {
				return bad("sampling factor 0")
			}
			hmax, vmax, sum = max(hmax, hi), max(vmax, vi), sum+hi*vi
		}
		mxx, myy := (w+8*hmax-1)/(8*hmax), (h+8*vmax-1)/(8*vmax)
		blocks := mxx * myy * sum
		n := max(4*w*h, 64*blocks)
		if code == 0xc2 { // progressive
			n += 256 * blocks
		}
		return n, nil
	}
}

// fitCells is the cells a w×h picture takes inline: at most previewCols × previewRows
// and the width available, its aspect kept (a cell is twice as high as wide).
func fitCells(w, h, avail int) (cols, rows int) {
	return fitBox(w, h, min(previewCols, avail), previewRows)
}

// fitBox is the cells a w×h picture takes in at most maxCols × maxRows, its aspect kept.
func fitBox(w, h, maxCols, maxRows int) (cols, rows int) {
	if w <= 0 || h <= 0 || maxCols < 1 || maxRows < 1 {
		return 0, 0
	}
	cols = maxCols
	rows = max(1, (cols*h*cellW+w*cellH/2)/(w*cellH))
	if rows > maxRows {
		rows = maxRows
		cols = max(1, min(cols, (rows*w*cellH+h*cellW/2)/(h*cellW)))
	}
	return cols, rows
}

// scaleDown averages img into at most maxW×maxH pixels, its aspect kept (a smaller
// image is copied as it is). The decoders' own pixel types are read directly: going
// through image.Image.At would allocate once per pixel (33 M allocations for 16 Mpx).
func scaleDown(img image.Image, maxW, maxH int) *image.NRGBA {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	dw, dh := sw, sh
	if dw > maxW {
		dw, dh = maxW, max(1, sh*maxW/sw)
	}
	if dh > maxH {
		dw, dh = max(1, sw*maxH/sh), maxH
	}
	px := pixels(img)
	dst := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		y0, y1 := b.Min.Y+y*sh/dh, b.Min.Y+max((y+1)*sh/dh, y*sh/dh+1)
		for x := range dw {
			x0, x1 := b.Min.X+x*sw/dw, b.Min.X+max((x+1)*sw/dw, x*sw/dw+1)
			var r, g, bl, a, n uint64
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					pr, pg, pb, pa := px(sx, sy)
					r, g, bl, a, n = r+uint64(pr), g+uint64(pg), bl+uint64(pb), a+uint64(pa), n+1
				}
			}
			// The sums are of premultiplied 16-bit values: back to 8-bit, not premultiplied.
			c := color.NRGBA{A: uint8(a / n >> 8)}
			if a > 0 {
				c.R, c.G, c.B = uint8(r*0xffff/a>>8), uint8(g*0xffff/a>>8), uint8(bl*0xffff/a>>8)
			}
			dst.SetNRGBA(x, y, c)
		}
	}
	return dst
}

// pixels returns a reader of img's pixels as premultiplied 16-bit RGBA (color.Color's
// RGBA), without an allocation per pixel for the types the PNG, JPEG and GIF decoders
// make.
func pixels(img image.Image) func(x, y int) (r, g, b, a uint32) {
	switch m := img.(type) {
	case *image.NRGBA:
		return func(x, y int) (uint32, uint32, uint32, uint32) { return m.NRGBAAt(x, y).RGBA() }
	case *image.RGBA:
		return func(x, y int) (uint32, uint32, uint32, uint32) { return m.RGBAAt(x, y).RGBA() }
	case *image.NRGBA64: // 16-bit PNG
		return func(x, y int) (uint32, uint32, uint32, uint32) { return m.NRGBA64At(x, y).RGBA() }
	case *image.RGBA64:
		return func(x, y int) (uint32, uint32, uint32, uint32) { return m.RGBA64At(x, y).RGBA() }
	case *image.CMYK: // CMYK JPEG
		return func(x, y int) (uint32, uint32, uint32, uint32) { return m.CMYKAt(x, y).RGBA() }
	case *image.Gray:
		return func(x, y int) (uint32, uint32, uint32, uint32) { return m.GrayAt(x, y).RGBA() }
	case *image.YCbCr:
		return func(x, y int) (uint32, uint32, uint32, uint32) { return m.YCbCrAt(x, y).RGBA() }
	case *image.Paletted:
		if len(m.Palette) == 0 {
			break
		}
		return func(x, y int) (uint32, uint32, uint32, uint32) {
			i := int(m.ColorIndexAt(x, y))
			if i >= len(m.Palette) {
				return 0, 0, 0, 0
			}
			return m.Palette[i].RGBA()
		}
	}
	return func(x, y int) (uint32, uint32, uint32, uint32) { return img.At(x, y).RGBA() }
}

// preview is the picture of one message's image.
type preview struct {
	id         int // kitty image id (24 bits: it is the placeholders' colour)
	cols, rows int
	ready      bool // transmitted: the placeholders may be drawn
}

// previewMsg reports a picture made (seq: its transmission) or not (err).
type previewMsg struct {
	contact string
	msgID   int64
	seq     string
	err     error
}

// newImageID picks a random 24-bit kitty image id: ids are shared by every program in
// the terminal window, so a fixed one could replace another program's picture.
func newImageID() int {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return int(binary.BigEndian.Uint32(b[:])%(1<<24-1<<16)) + 1<<16
}

// wantPreview starts making the preview of msg's image, if the terminal shows them and
// the image is on disk (downloaded, or ours). At most once per message.
func (m *mainScreen) wantPreview(msg chat.Message) tea.Cmd {
	a := msg.Attachment
	if m.c.graphics != KittyGraphics || a == nil || msg.ID == 0 || a.Path == "" || a.Width <= 0 || a.Height <= 0 ||
		!strings.HasPrefix(a.MediaType, "image/") || (!msg.Outgoing && a.State != chat.AttachmentDownloaded) {
		return nil
	}
	if _, ok := m.previews[msg.ID]; ok {
		return nil
	}
	cols, rows := fitCells(a.Width, a.Height, m.convWidth()-24)
	if cols == 0 {
		return nil
	}
	p := &preview{id: newImageID(), cols: cols, rows: rows}
	m.previews[msg.ID] = p
	contact, id, path := msg.Contact, msg.ID, a.Path
	return func() tea.Msg {
		seq, err := kittyTransmit(m.c.ctx, path, p)
		return previewMsg{contact: contact, msgID: id, seq: seq, err: err}
	}
}

// kittyTransmit reads the image at path and returns the escape sequence that gives it
// to the terminal as image p.id with a virtual placement of p.cols × p.rows cells.
func kittyTransmit(ctx context.Context, path string, p *preview) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	img, err := decodePreview(ctx, f, p.cols*cellW, p.rows*cellH)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	err = kitty.EncodeGraphics(&buf, img, &kitty.Options{Action: kitty.TransmitAndPut, Transmission: kitty.Direct,
		Format: kitty.PNG, ID: p.id, VirtualPlacement: true, Columns: p.cols, Rows: p.rows, Quiet: 2, Chunk: true})
	return buf.String(), err
}

func (m *mainScreen) onPreview(msg previewMsg) tea.Cmd {
	p, ok := m.previews[msg.msgID]
	if !ok {
		return nil
	}
	if msg.err != nil {
		m.c.log.Info("no image preview", "message", msg.msgID, "err", chat.ErrorKind(msg.err, ErrNoPreview))
		return nil // stays in previews, not ready: not tried again
	}
	p.ready = true
	if cv, ok := m.convs[msg.contact]; ok {
		if it, ok := cv.byID[msg.msgID]; ok {
			it.lines = nil
		}
	}
	return tea.Raw(msg.seq)
}

// placeholderRows are the cells that show picture p: kitty's placeholder character
// with the row and column diacritics, in the colour that encodes the image id.
func placeholderRows(p *preview) []string {
	fg := fmt.Sprintf("\x1b[38;2;%d;%d;%dm", p.id>>16&0xff, p.id>>8&0xff, p.id&0xff)
	rows := make([]string, p.rows)
	var b strings.Builder
	for r := range p.rows {
		b.Reset()
		b.WriteString(fg)
		for c := range p.cols {
			b.WriteRune(kitty.Placeholder)
			b.WriteRune(kitty.Diacritic(r))
			b.WriteRune(kitty.Diacritic(c))
		}
		b.WriteString("\x1b[39m")
		rows[r] = b.String()
	}
	return rows
}
