package ui

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/ansi/kitty"

	"pfschat/chat"
)

// ctx0 is the context of a preview no one cancels.
var ctx0 = context.Background()

func testImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	return img
}

func encoded(t testing.TB, format string, w, h int) []byte {
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, testImage(w, h))
	case "jpeg":
		err = jpeg.Encode(&b, testImage(w, h), nil)
	case "gif":
		err = gif.Encode(&b, testImage(w, h), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngClaiming is a 1×1 PNG whose header claims w×h (its CRC fixed): the pixels that
// follow are far too few.
func pngClaiming(t testing.TB, w, h uint32) []byte {
	b := encoded(t, "png", 1, 1)
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// TestDecodePreview: PNG, JPEG and GIF are scaled into the box with their aspect; a
// header over the caps (chat.ImageSize's, or the preview's 64 MiB of pixels: 8 Mpx for
// a PNG) is refused before any pixel is decoded; a header whose pixels do not follow is
// refused.
func TestDecodePreview(t *testing.T) {
	for _, format := range []string{"png", "jpeg", "gif"} {
		img, err := decodePreview(ctx0, bytes.NewReader(encoded(t, format, 160, 120)), 64, 32)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if b := img.Bounds(); b.Dx() != 42 || b.Dy() != 32 {
			t.Fatalf("%s 160×120 into 64×32: %v", format, b)
		}
	}
	if img, err := decodePreview(ctx0, bytes.NewReader(encoded(t, "png", 10, 5)), 64, 32); err != nil || img.Bounds().Dx() != 10 {
		t.Fatalf("a small image is kept as it is: %v %v", img, err)
	}
	for what, data := range map[string][]byte{
		"100000×100000 (over chat's caps)": pngClaiming(t, 100000, 100000),
		"4096×4096 PNG (over 8 Mpx)":       pngClaiming(t, 4096, 4096),
		"300×300 without its pixels":       pngClaiming(t, 300, 300),
		"a script":                         []byte("#!/bin/sh\n"),
		"a truncated JPEG":                 encoded(t, "jpeg", 64, 64)[:200],
	} {
		if _, err := decodePreview(ctx0, bytes.NewReader(data), 64, 32); !errors.Is(err, ErrNoPreview) {
			t.Errorf("%s: %v, want ErrNoPreview", what, err)
		}
	}
}

// FuzzPreviewImage: any bytes from the network give a picture within the box or
// ErrNoPreview — never a panic, never a picture bigger than asked — and the picture's
// sixel sequence is one sequence.
func FuzzPreviewImage(f *testing.F) {
	for _, format := range []string{"png", "jpeg", "gif"} {
		f.Add(encoded(f, format, 33, 17))
	}
	f.Add(pngClaiming(f, 100000, 100000))
	f.Add(pngClaiming(f, 4000, 4000))
	f.Add([]byte("GIF89a\xff\xff\xff\xff"))
	f.Add(progressiveJPEG(f, "progressive-420.jpeg", 150, 103))
	f.Add(progressiveJPEG(f, "progressive-444.jpeg", 4096, 4096))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decodePreview(ctx0, bytes.NewReader(data), 64, 32)
		if err != nil {
			if !errors.Is(err, ErrNoPreview) {
				t.Fatalf("error %v is not ErrNoPreview", err)
			}
			return
		}
		if b := img.Bounds(); b.Dx() < 1 || b.Dy() < 1 || b.Dx() > 64 || b.Dy() > 32 {
			t.Fatalf("picture %v outside the 64×32 box", b)
		}
		// What reaches the terminal is one sixel sequence: nothing ends it early.
		if seq := encodeSixel(img); strings.Index(seq, "\x1b\\") != len(seq)-2 || strings.Count(seq, "\x1b") != 2 {
			t.Fatalf("sixel sequence ends early or holds escapes: %.60q", seq)
		}
	})
}

// FuzzJPEGDecodeBytes: any bytes give what decoding them takes (at least nothing) or
// ErrNoPreview, never a panic.
func FuzzJPEGDecodeBytes(f *testing.F) {
	f.Add(progressiveJPEG(f, "progressive-444.jpeg", 4096, 4096))
	f.Add(encoded(f, "jpeg", 33, 17))
	f.Add([]byte("\xff\xd8\x00\xff\x00\xff\xff\xd0\xff\xc2\x00\x0b\x08\x00\x01\x00\x01\x01\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := jpegDecodeBytes(bytes.NewReader(data))
		if err != nil && !errors.Is(err, ErrNoPreview) || err == nil && n < 0 {
			t.Fatalf("%d, %v", n, err)
		}
	})
}

func TestFitCells(t *testing.T) {
	for _, tc := range []struct{ w, h, avail, cols, rows int }{
		{640, 480, 80, 32, 8},  // 4:3 is 32×12 cells by width: the rows cap it, the width follows
		{1920, 400, 80, 32, 3}, // a wide banner
		{100, 1000, 80, 2, 8},  // a tall strip
		{640, 480, 10, 10, 4},  // a narrow pane
		{640, 480, 0, 0, 0},    // no room
	} {
		cols, rows := fitCells(tc.w, tc.h, tc.avail)
		if tc.cols == 32 && tc.rows == 8 {
			if rows != 8 || cols > 32 || cols < 20 {
				t.Errorf("fitCells(%d, %d, %d) = %d×%d", tc.w, tc.h, tc.avail, cols, rows)
			}
			continue
		}
		if cols != tc.cols || rows != tc.rows {
			t.Errorf("fitCells(%d, %d, %d) = %d×%d, want %d×%d", tc.w, tc.h, tc.avail, cols, rows, tc.cols, tc.rows)
		}
	}
}

func TestDetectGraphics(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want Graphics
	}{
		{map[string]string{"TERM": "xterm-kitty"}, KittyGraphics},
		{map[string]string{"TERM": "xterm-256color", "KITTY_WINDOW_ID": "1"}, KittyGraphics},
		{map[string]string{"TERM": "xterm-ghostty"}, KittyGraphics},
		{map[string]string{"TERM": "foot"}, SixelGraphics},
		{map[string]string{"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, SixelGraphics},
		{map[string]string{"TERM": "xterm-256color"}, NoGraphics},
		{map[string]string{"TERM": "xterm-kitty", "TMUX": "/tmp/tmux-1/default,1,0"}, NoGraphics},
		{map[string]string{"TERM": "screen-256color", "KITTY_WINDOW_ID": "1"}, NoGraphics},
		{map[string]string{"TERM": "xterm-256color", "PFSCHAT_GRAPHICS": "kitty"}, KittyGraphics},
		{map[string]string{"TERM": "xterm-kitty", "PFSCHAT_GRAPHICS": "none"}, NoGraphics},
	} {
		if got := DetectGraphics(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.env, got, tc.want)
		}
	}
}

// TestKittyPreviewInline: in a kitty terminal a sent image gets its picture — sent to
// the terminal once as a virtual placement, then drawn as placeholder cells under the
// attachment line, every line still exactly the pane's width; elsewhere nothing.
func TestKittyPreviewInline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(path, encoded(t, "png", 160, 120), 0o600); err != nil {
		t.Fatal(err)
	}
	photo := chat.Message{ID: 3, Contact: "bob", Outgoing: true, SentAt: fixedNow, State: chat.Sent,
		Attachment: &chat.Attachment{FileName: "photo.png", MediaType: "image/png", Size: 1000, State: chat.AttachmentSent,
			Path: path, Width: 160, Height: 120}}
	m := newTestMainScreen(t)
	m.open = "bob"
	cv := newConversation("bob")
	cv.loaded = true
	m.convs["bob"] = cv
	cv.appendMsg(photo, m.c.loc)
	if m.wantPreview(photo) != nil {
		t.Fatal("a preview in a terminal without graphics")
	}
	m.c.graphics = KittyGraphics
	cmd := m.wantPreview(photo)
	if cmd == nil {
		t.Fatal("no preview in kitty")
	}
	if m.wantPreview(photo) != nil {
		t.Fatal("the preview is made twice")
	}
	pm := cmd().(previewMsg)
	p := m.previews[photo.ID]
	if pm.err != nil || !strings.HasPrefix(pm.seq, "\x1b_G") || !strings.Contains(pm.seq, "U=1") || !strings.Contains(pm.seq, "f=100") {
		t.Fatalf("transmission %.80q: %v", pm.seq, pm.err)
	}
	raw, ok := m.onPreview(pm)().(tea.RawMsg)
	if !ok || raw.Msg != pm.seq {
		t.Fatal("the picture is not sent to the terminal")
	}
	view := m.View()
	if n := strings.Count(view, string(kitty.Placeholder)); n != p.cols*p.rows || p.rows < 2 {
		t.Fatalf("%d placeholder cells for a %d×%d picture", n, p.cols, p.rows)
	}
	if !strings.Contains(view, "\x1b[38;2;") {
		t.Fatal("the placeholders do not carry the image id")
	}
	for i, l := range strings.Split(view, "\n") {
		if w := ansi.StringWidth(l); w != m.c.width {
			t.Fatalf("line %d is %d cells wide, want %d", i, w, m.c.width)
		}
	}
	// A file that is not the image its header says: no picture, and no second try; the
	// log says why without the file's path (the downloads folder and the file's name).
	var logged bytes.Buffer
	m.c.log = slog.New(slog.NewTextHandler(&logged, nil))
	bad := photo
	bad.ID, bad.Attachment = 4, &chat.Attachment{FileName: "x.png", MediaType: "image/png", State: chat.AttachmentSent,
		Path: filepath.Join(t.TempDir(), "missing.png"), Width: 10, Height: 10}
	if pm := m.wantPreview(bad)().(previewMsg); pm.err == nil || m.onPreview(pm) != nil || m.wantPreview(bad) != nil {
		t.Fatalf("a missing image: %v", pm.err)
	}
	if log := logged.String(); strings.Contains(log, "missing.png") || !strings.Contains(log, "open: no such file or directory") {
		t.Errorf("the log of the missing preview: %q", log)
	}
}

// TestEncodeSixel: a picture becomes one DCS sixel sequence: its raster size, bands of
// six pixel rows, the transparent pixels left out.
func TestEncodeSixel(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 10, 7))
	for x := range 10 {
		img.SetNRGBA(x, 0, color.NRGBA{255, 0, 0, 255}) // a red top row
	}
	img.SetNRGBA(0, 6, color.NRGBA{0, 0, 255, 255}) // one blue pixel in the second band
	got := encodeSixel(img)
	want := "\x1bP0;1;0q\"1;1;10;7"
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "\x1b\\") {
		t.Fatalf("sequence %.40q…", got)
	}
	bands := got[strings.LastIndex(got, "#215;2;100;100;100")+len("#215;2;100;100;100") : len(got)-2]
	// Band 1: red (#180) on the top row of all 10 columns ('@' = bit 0), run-length coded.
	// Band 2: blue (#5) in column 0 only.
	if bands != "#180!10@$-#5@$-" {
		t.Fatalf("bands %q", bands)
	}
}

// TestSixelPreviewDialog: on a sixel terminal /preview opens a box the size of the
// picture, the picture is made in the background and written into the box (cursor
// saved and restored) once the box is on screen; closing repaints the whole screen.
func TestSixelPreviewDialog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(path, encoded(t, "jpeg", 160, 120), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newTestMainScreen(t)
	m.open = "bob"
	cv := newConversation("bob")
	cv.loaded = true
	m.convs["bob"] = cv
	cv.appendMsg(chat.Message{ID: 2, Contact: "bob", SentAt: fixedNow, State: chat.Delivered,
		Attachment: &chat.Attachment{FileName: "photo.jpg", MediaType: "image/jpeg", State: chat.AttachmentDownloaded,
			Path: path, Width: 160, Height: 120}}, m.c.loc)
	if m.previewCommand() != nil || !strings.Contains(m.notice, "shows no pictures") {
		t.Fatalf("no graphics: %q", m.notice)
	}
	m.c.graphics = SixelGraphics
	push, ok := m.previewCommand()().(pushDialogMsg)
	if !ok {
		t.Fatalf("no dialog: %q", m.notice)
	}
	d := push.d.(*sixelDialog)
	ready := d.startCmd()().(sixelReadyMsg)
	if ready.err != nil || !strings.HasPrefix(ready.seq, "\x1bP") {
		t.Fatalf("picture: %v", ready.err)
	}
	_, tick := d.Update(ready)
	if tick == nil {
		t.Fatal("the picture is never drawn")
	}
	_, draw := d.Update(sixelDrawMsg{d})
	raw, ok := draw().(tea.RawMsg)
	if s, _ := raw.Msg.(string); !ok || !strings.HasPrefix(s, "\x1b7\x1b[") || !strings.HasSuffix(s, ready.seq+"\x1b8") {
		t.Fatalf("drawn as %.40q", raw.Msg)
	}
	if lines := strings.Split(ansi.Strip(d.View()), "\n"); len(lines) < d.rows+6 {
		t.Fatalf("the box is %d lines for a picture of %d rows", len(lines), d.rows)
	}
	_, closed := d.Update(keyMsg("esc"))
	if !d.isDone() || closed == nil {
		t.Fatal("esc does not close the picture with a repaint")
	}
	if _, again := d.Update(sixelDrawMsg{d}); again != nil {
		t.Fatal("a closed dialog draws its picture")
	}
}

// BenchmarkPreviewWorstCase is what a sender can make a receiver spend on one preview:
// an image at the decode cap (PNG 8 Mpx, JPEG 16 Mpx), decoded and scaled to the inline
// box, beside the same file's header check alone (chat.ImageSize) in the same run.
//
//	go test ./ui -run '^$' -bench PreviewWorstCase -benchtime 3x
func BenchmarkPreviewWorstCase(b *testing.B) {
	for _, tc := range []struct {
		format string
		w, h   int
	}{{"png", 4096, 2048}, {"jpeg", 4096, 4096}} {
		format, data := tc.format, encoded(b, tc.format, tc.w, tc.h)
		b.Run(format+"/header", func(b *testing.B) {
			for b.Loop() {
				if _, _, _, err := chat.ImageSize(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(format+"/preview", func(b *testing.B) {
			for b.Loop() {
				if _, err := decodePreview(ctx0, bytes.NewReader(data), previewCols*cellW, previewRows*cellH); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// progressiveJPEG is a real progressive JPEG (Go's image/testdata, 150×103) whose frame
// header is made to claim w×h: a few KiB the decoder would meet by allocating, before
// any pixel, the image and 4 bytes of coefficients per sample (256 per 8×8 block).
func progressiveJPEG(t testing.TB, name string, w, h int) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte{0xff, 0xc2})
	if i < 0 {
		t.Fatalf("%s is not progressive", name)
	}
	binary.BigEndian.PutUint16(b[i+5:], uint16(h))
	binary.BigEndian.PutUint16(b[i+7:], uint16(w))
	return b
}

// TestDecodePreviewProgressiveJPEG: a progressive JPEG previews, but its coefficients
// count against the 64 MiB a preview may take: a 3 KiB file claiming 4096×4096 (inside
// the 16 Mpx of a baseline JPEG) would take 120 MiB (4:2:0) to 240 MiB (4:4:4) before
// its first pixel, and is refused before anything is decoded.
func TestDecodePreviewProgressiveJPEG(t *testing.T) {
	for _, name := range []string{"progressive-420.jpeg", "progressive-444.jpeg"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if img, err := decodePreview(ctx0, bytes.NewReader(data), 64, 32); err != nil || img.Bounds().Dx() != 46 {
			t.Fatalf("%s: %v %v", name, img.Bounds(), err)
		}
		var err2 error
		spent := allocated(func() { _, err2 = decodePreview(ctx0, bytes.NewReader(progressiveJPEG(t, name, 4096, 4096)), 64, 32) })
		if !errors.Is(err2, ErrNoPreview) || !strings.Contains(err2.Error(), "over") || spent > 8<<20 {
			t.Errorf("%s claiming 4096×4096: %v, %d MiB allocated", name, err2, spent>>20)
		}
		// 2048×1536 fits (4:4:4: 3 Mpx × 16 bytes, 48 MiB): refused only because its
		// pixels are not there.
		if _, err := decodePreview(ctx0, bytes.NewReader(progressiveJPEG(t, name, 2048, 1536)), 64, 32); !errors.Is(err, ErrNoPreview) || strings.Contains(err.Error(), "over") {
			t.Errorf("%s claiming 2048×1536: %v", name, err)
		}
	}
}

// allocated is how many bytes f allocates (nothing else in the package runs in parallel).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestPreviewsDecodeOneAtATime: the previews a conversation's history asks for (up to
// a page of 50 images, each up to 64 MiB decoded) are made one after the other, not all
// at once: while one decodes, the next waits (and gives up when pfschat quits).
func TestPreviewsDecodeOneAtATime(t *testing.T) {
	data := encoded(t, "png", 160, 120)
	previewSlot <- struct{}{} // a preview is decoding
	quit, cancel := context.WithCancel(ctx0)
	cancel()
	if img, err := decodePreview(quit, bytes.NewReader(data), 64, 32); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNoPreview) {
		t.Fatalf("a second preview decoded beside the first: %v, %v", img != nil, err)
	}
	<-previewSlot
	if _, err := decodePreview(ctx0, bytes.NewReader(data), 64, 32); err != nil {
		t.Fatal(err)
	}
	if len(previewSlot) != 0 {
		t.Fatal("a preview keeps the slot")
	}
}

// TestScaleDownAllocatesNoPixel: scaling reads every pixel type the PNG, JPEG and GIF
// decoders make without an allocation per pixel (a 16-bit PNG at the 8 Mpx cap would
// otherwise allocate 8 M colours, 64 MiB of garbage, on top of its 64 MiB of pixels).
func TestScaleDownAllocatesNoPixel(t *testing.T) {
	r := image.Rect(0, 0, 64, 64)
	for _, img := range []image.Image{
		image.NewNRGBA(r), image.NewRGBA(r), image.NewNRGBA64(r), image.NewRGBA64(r), image.NewGray(r),
		image.NewGray16(r), image.NewCMYK(r), image.NewYCbCr(r, image.YCbCrSubsampleRatio420),
		image.NewPaletted(r, color.Palette{color.Black}),
	} {
		if n := testing.AllocsPerRun(3, func() { scaleDown(img, 8, 8) }); n > 10 {
			t.Errorf("%T: %.0f allocations for 4096 pixels", img, n)
		}
	}
}
