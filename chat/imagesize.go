package chat

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // header decoders for ImageSize
	_ "image/jpeg" // "
	_ "image/png"  // "
	"io"
	"os"
)

// MaxImageSide and MaxImagePixels cap what ImageSize accepts: a header claiming more
// is refused before anything would be decoded (decompression bombs).
const (
	MaxImageSide   = 1 << 15
	MaxImagePixels = 1 << 28
	imageHeaderMax = 1 << 20 // bytes of the file a header may take
)

// ErrNotImage: the file is not a PNG, JPEG or GIF, or its header is damaged or over the caps.
var ErrNotImage = errors.New("chat: not an image pfschat reads")

// ImageSize reads an image's dimensions from its header only (PNG, JPEG, GIF), reading
// at most 1 MiB and decoding no pixels, and refuses sizes over the caps.
func ImageSize(r io.Reader) (width, height int, format string, err error) {
	cfg, format, err := image.DecodeConfig(bufio.NewReader(io.LimitReader(r, imageHeaderMax)))
	if err != nil {
		return 0, 0, "", fmt.Errorf("%w: %v", ErrNotImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxImageSide || cfg.Height > MaxImageSide ||
		int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return 0, 0, "", fmt.Errorf("%w: %d×%d is over the caps", ErrNotImage, cfg.Width, cfg.Height)
	}
	return cfg.Width, cfg.Height, format, nil
}

// ImageFileSize is ImageSize of the file at path.
func ImageFileSize(path string) (width, height int, format string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, "", err
	}
	defer f.Close()
	return ImageSize(f)
}
