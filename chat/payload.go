package chat

import (
	"errors"

	"pfschat/chat/payload"
)

// MaxTextBytes is the longest text one message carries, in bytes of UTF-8: the one
// limit that the UI, the CLI and chat/PAYLOAD.md share (payload.MaxText). Longer text is
// refused with ErrTextTooLong, never cut.
const MaxTextBytes = payload.MaxText

// ErrTextTooLong: the text is over MaxTextBytes; nothing was sent.
var ErrTextTooLong = errors.New("text too long")
