package ui

// Sixel previews (issue 15): sixel pixels cannot live in the cells the renderer diffs,
// so a sixel terminal shows a picture on demand — /preview opens a dialog with an empty
// box, and once the dialog is on screen the picture is written into the box directly
// (cursor saved and restored around it). Closing the dialog repaints the whole screen,
// which wipes the pixels.

import (
	"context"
	"fmt"
	"image"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"pfschat/chat"
)

// sixelCellW × sixelCellH: the pixels a cell is assumed to have at least; the picture
// is made that size per cell, so it never overflows its box in a terminal whose cells
// are bigger (most: 8×16 and up).
const sixelCellW, sixelCellH = 7, 14

// sixelDrawDelay is how long after the dialog's first frame the picture is written:
// the renderer flushes frames at 60 per second, so by then the box is on screen and
// will not be drawn over.
const sixelDrawDelay = 80 * time.Millisecond

type sixelDialog struct {
	dialogBase
	c          *common
	title      string
	path       string
	cols, rows int
	seq        string // the DCS sequence of the picture, once made
	err        error
}

type sixelReadyMsg struct {
	d   *sixelDialog
	seq string
	err error
}

type sixelDrawMsg struct{ d *sixelDialog }

// previewCommand (/preview) shows the newest image of the conversation: in a dialog on a
// sixel terminal; in kitty it is in the conversation already.
func (m *mainScreen) previewCommand() tea.Cmd {
	cv, ok := m.convs[m.open]
	if !ok {
		return nil
	}
	for i := len(cv.items) - 1; i >= 0; i-- {
		msg := cv.items[i].m
		a := msg.Attachment
		if a == nil || a.Width <= 0 || a.Path == "" || !strings.HasPrefix(a.MediaType, "image/") ||
			(!msg.Outgoing && a.State != chat.AttachmentDownloaded) {
			continue
		}
		switch m.c.graphics {
		case KittyGraphics:
			m.setNotice("pictures show in the conversation in this terminal", false)
			return nil
		case SixelGraphics:
			cols, rows := fitBox(a.Width, a.Height, min(64, m.c.width-10), min(24, m.c.height-10))
			if cols < 4 || rows < 2 {
				m.setNotice("the terminal is too small for a picture", true)
				return nil
			}
			title := fmt.Sprintf("%s · %d×%d", chat.SafeFileName(a.FileName), a.Width, a.Height)
			return pushDialog(&sixelDialog{c: m.c, title: ansi.Truncate(title, cols, "…"), path: a.Path, cols: cols, rows: rows})
		}
		m.setNotice("this terminal shows no pictures (kitty, ghostty, foot and WezTerm do)", false)
		return nil
	}
	m.setNotice("no downloaded image here", false)
	return nil
}

// startCmd makes the picture in the background once the dialog is pushed.
func (d *sixelDialog) startCmd() tea.Cmd {
	return func() tea.Msg {
		seq, err := sixelPicture(d.c.ctx, d.path, d.cols*sixelCellW, d.rows*sixelCellH)
		return sixelReadyMsg{d: d, seq: seq, err: err}
	}
}

// sixelPicture reads the image at path (decodePreview's checks and caps) and returns
// it as a sixel sequence of at most maxW×maxH pixels.
func sixelPicture(ctx context.Context, path string, maxW, maxH int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	img, err := decodePreview(ctx, f, maxW, maxH)
	if err != nil {
		return "", err
	}
	return encodeSixel(img), nil
}

// encodeSixel writes img as a sixel sequence in the 216 colours of a 6×6×6 cube
// (x/ansi's sixel encoder would add a module for its bit sets; a preview needs no
// better palette). Pixels less than half opaque are left transparent.
func encodeSixel(img *image.NRGBA) string {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	var out strings.Builder
	out.WriteString("\x1bP0;1;0q")
	fmt.Fprintf(&out, "\"1;1;%d;%d", w, h)
	for i := range 216 {
		fmt.Fprintf(&out, "#%d;2;%d;%d;%d", i, i/36*20, i/6%6*20, i%6*20)
	}
	q := func(v uint8) int { return (int(v)*5 + 127) / 255 }
	idx := make([]int16, w*h) // each pixel's colour, -1: transparent
	for y := range h {
		for x := range w {
			c := img.NRGBAAt(b.Min.X+x, b.Min.Y+y)
			idx[y*w+x] = -1
			if c.A >= 128 {
				idx[y*w+x] = int16(q(c.R)*36 + q(c.G)*6 + q(c.B))
			}
		}
	}
	index := func(x, y int) int { return int(idx[y*w+x]) }
	row := make([]byte, w)
	for y0 := 0; y0 < h; y0 += 6 {
		var used [216]bool
		for k := 0; k < 6 && y0+k < h; k++ {
			for x := range w {
				if i := index(x, y0+k); i >= 0 {
					used[i] = true
				}
			}
		}
		for c := range 216 {
			if !used[c] {
				continue
			}
			for x := range w {
				bits := 0
				for k := 0; k < 6 && y0+k < h; k++ {
					if index(x, y0+k) == c {
						bits |= 1 << k
					}
				}
				row[x] = byte(63 + bits)
			}
			end := w // trailing empty sixels draw nothing
			for end > 0 && row[end-1] == '?' {
				end--
			}
			fmt.Fprintf(&out, "#%d", c)
			for x := 0; x < end; {
				n := 1
				for x+n < end && row[x+n] == row[x] {
					n++
				}
				if n > 3 {
					fmt.Fprintf(&out, "!%d%c", n, row[x])
				} else {
					out.Write(row[x : x+n])
				}
				x += n
			}
			out.WriteByte('$')
		}
		out.WriteByte('-')
	}
	out.WriteString("\x1b\\")
	return out.String()
}

func (d *sixelDialog) Update(msg tea.Msg) (dialog, tea.Cmd) {
	switch msg := msg.(type) {
	case sixelReadyMsg:
		if msg.d != d || d.done {
			return d, nil
		}
		d.seq, d.err = msg.seq, msg.err
		if d.err != nil {
			return d, nil
		}
		return d, tea.Tick(sixelDrawDelay, func(time.Time) tea.Msg { return sixelDrawMsg{d} })
	case sixelDrawMsg:
		if msg.d != d || d.done || d.seq == "" {
			return d, nil
		}
		return d, tea.Raw(d.placed())
	case tea.KeyPressMsg:
		switch msg.String() {
		case "esc", "enter", "q":
			d.finish()
			return d, tea.ClearScreen // the pixels are not cells: only a full repaint wipes them
		}
	}
	return d, nil
}

func (d *sixelDialog) View() string {
	var body string
	if d.err != nil {
		body = lipgloss.Wrap("no picture: "+errText(d.err), d.cols, "")
	} else {
		body = strings.TrimSuffix(strings.Repeat(spaces(d.cols)+"\n", d.rows), "\n")
	}
	return d.c.frame(&d.dialogBase, d.title, body+"\n\n"+d.c.hint("esc", "close"), max(d.cols, 14))
}

// placed is the picture with the cursor moved to the box's top-left cell: the dialog is
// centred (App.render) and its body starts inside the border, the padding and the
// title's two lines.
func (d *sixelDialog) placed() string {
	v := d.View()
	x := max(0, (d.c.width-lipgloss.Width(v))/2)
	y := max(0, (d.c.height-lipgloss.Height(v))/2)
	s := &d.c.styles
	top := y + s.Dialog.GetBorderTopSize() + s.Dialog.GetPaddingTop() + 2
	left := x + s.Dialog.GetBorderLeftSize() + s.Dialog.GetPaddingLeft()
	return "\x1b7" + ansi.CursorPosition(left+1, top+1) + d.seq + "\x1b8"
}
