package chat_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pfschat/chat"
)

// ErrorKind keeps of an error only words of fixed text: a kind it knows, a system
// call and its errno, or a Go type; never the file name, path or folder err names.
func TestErrorKind(t *testing.T) {
	const secret = "medical-report.pdf"
	_, openErr := os.Open(filepath.Join(t.TempDir(), secret))
	errOwn := errors.New("ui: no preview")
	tests := []struct {
		name  string
		err   error
		kinds []error
		want  string
	}{
		{"nil", nil, nil, ""},
		{"a kind of chat's", fmt.Errorf("%w: %s", chat.ErrAttachmentGone, secret), nil, chat.ErrAttachmentGone.Error()},
		{"the caller's kind first", fmt.Errorf("%w: %w", errOwn, openErr), []error{errOwn}, errOwn.Error()},
		{"a system call", fmt.Errorf("chat: saving %s: %w", secret, openErr), nil, "open: no such file or directory"},
		{"a join", errors.Join(fmt.Errorf("chat: the file to send: %w", openErr)), nil, "open: no such file or directory"},
		{"a join of unnamed errors", errors.Join(fmt.Errorf("reading %s", secret), fmt.Errorf("chat: %w", fmt.Errorf("sealing %s", secret))), nil,
			"*errors.errorString; *fmt.wrapError"}, // a part each, not "*errors.joinError"
		{"anything else", fmt.Errorf("chat: %s went wrong", secret), nil, "*errors.errorString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := chat.ErrorKind(tt.err, tt.kinds...)
			if got != tt.want || strings.Contains(got, secret) {
				t.Errorf("ErrorKind(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
