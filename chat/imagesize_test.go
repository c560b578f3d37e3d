package chat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/png"
	"strings"
	"testing"
)

func pngBytes(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestImageSize(t *testing.T) {
	w, h, format, err := ImageSize(bytes.NewReader(pngBytes(t, 640, 480)))
	if err != nil || w != 640 || h != 480 || format != "png" {
		t.Fatalf("%d×%d %s %v", w, h, format, err)
	}
	// A header that claims 100000×100000: refused from the header alone.
	big := pngBytes(t, 1, 1)
	binary.BigEndian.PutUint32(big[16:], 100000) // IHDR width
	binary.BigEndian.PutUint32(big[20:], 100000) // IHDR height
	binary.BigEndian.PutUint32(big[29:], crc32.ChecksumIEEE(big[12:29]))
	if _, _, _, err := ImageSize(bytes.NewReader(big)); !errors.Is(err, ErrNotImage) || !strings.Contains(err.Error(), "caps") {
		t.Fatalf("a huge header: %v", err)
	}
	if _, _, _, err := ImageSize(bytes.NewReader([]byte("#!/bin/sh\nrm -rf /\n"))); !errors.Is(err, ErrNotImage) {
		t.Fatalf("a script: %v", err)
	}
}

// FuzzImageSize: any bytes give dimensions within the caps or ErrNotImage, never a panic.
func FuzzImageSize(f *testing.F) {
	f.Add(pngBytes(f, 3, 2))
	f.Add([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00"))
	f.Add([]byte{0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, h, _, err := ImageSize(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrNotImage) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if w <= 0 || h <= 0 || w > MaxImageSide || h > MaxImageSide {
			t.Fatalf("%d×%d passed the caps", w, h)
		}
	})
}
