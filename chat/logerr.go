package chat

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"pfschat/relay/client"
)

// loggedKinds are the errors ErrorKind names, the most telling first. Their texts are
// fixed: none carries a file's name, a path or anything a contact sent.
var loggedKinds = []error{
	ErrAttachmentGone, ErrAttachmentDigest, ErrAttachmentCorrupt, ErrNotAttachment,
	ErrAttachmentStalled, ErrAttachmentFailed, ErrDownloadDir,
	ErrFileTooLarge, ErrNoBlobs, ErrNotImage, ErrDiskFull,
	ErrOffline, client.ErrConnectionLost, client.ErrNotConnected, ErrClosed,
	context.Canceled, context.DeadlineExceeded,
}

// ErrorKind says what kind of failure err is, for a log, in words that carry none of
// err's own text: the errors of files and attachments name the file, its path or the
// downloads directory, which are the user's and never go into a log. It is the text of
// the first of the caller's own kinds (errors of fixed text) or of chat's err wraps,
// else the system call that failed and its errno ("open: permission denied"), else
// err's Go type.
func ErrorKind(err error, kinds ...error) string {
	if err == nil {
		return ""
	}
	for _, kind := range slices.Concat(kinds, loggedKinds) {
		if errors.Is(err, kind) {
			return kind.Error()
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		var pathErr *fs.PathError
		var linkErr *os.LinkError
		var syscallErr *os.SyscallError
		switch {
		case errors.As(err, &pathErr):
			return pathErr.Op + ": " + errno.Error()
		case errors.As(err, &linkErr):
			return linkErr.Op + ": " + errno.Error()
		case errors.As(err, &syscallErr):
			return syscallErr.Syscall + ": " + errno.Error()
		}
		return errno.Error()
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		// errors.Join's parts, each named (the join's own type said nothing).
		var parts []string
		for _, e := range joined.Unwrap() {
			if e != nil {
				parts = append(parts, ErrorKind(e, kinds...))
			}
		}
		return strings.Join(parts, "; ")
	}
	return fmt.Sprintf("%T", err)
}
