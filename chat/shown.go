package chat

// Shown is what a reader of incoming messages (recv, the daemon's stream) has shown,
// by message id, and whether as a placeholder (a message that could not be read). A
// resend replaces its placeholder under the placeholder's id (chat/PAYLOAD.md §4.3):
// it is news and is shown again, as the next reading of the unread messages would
// show it. Anything else is shown once.
type Shown map[int64]bool

// Fresh reports whether the message id, a placeholder or not, is news.
func (s Shown) Fresh(id int64, placeholder bool) bool {
	wasPlaceholder, seen := s[id]
	return !seen || wasPlaceholder && !placeholder
}

// Mark records that the message id was shown.
func (s Shown) Mark(id int64, placeholder bool) { s[id] = placeholder }
