package ui

import (
	"fmt"
	"strings"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"

	"pfschat/chat"
)

// The message input holds exactly what the person typed or pasted, up to the one text
// limit (chat.MaxTextBytes, chat/PAYLOAD.md §4.1): nothing is cut or altered on the way
// to Send. The textarea widget would cut a long paste and rewrite tabs and control
// characters, so pastes pass through guardPaste first.

// maxInputLines is the most lines the textarea widget holds; it cuts a paste beyond.
const maxInputLines = 10000

func tooLong(n int) string {
	return fmt.Sprintf("the message is %d bytes; one message carries at most %d — shorten it or send it in parts", n, chat.MaxTextBytes)
}

// guardPaste refuses (with a notice, the input unchanged) a paste the input could not
// hold whole, and shows the control characters of one it can as Control Pictures
// (TAB as ␉, ESC as ␛, …), which inputText turns back when the message is sent.
func (m *mainScreen) guardPaste(msg tea.PasteMsg) (tea.PasteMsg, bool) {
	// Line breaks first: xterm, VTE and tmux send a paste's line breaks as CR (the key
	// Enter sends), so CRLF and a lone CR are the lines the person copied, not control
	// characters to keep (they arrived as one line with U+FFFD in it).
	msg.Content = strings.ReplaceAll(strings.ReplaceAll(msg.Content, "\r\n", "\n"), "\r", "\n")
	cur := m.input.Value()
	if n := len(cur) + len(msg.Content); n > chat.MaxTextBytes {
		m.setNotice("not pasted: "+tooLong(n), true)
		return msg, false
	}
	if strings.Count(cur, "\n")+strings.Count(msg.Content, "\n")+1 > maxInputLines {
		m.setNotice(fmt.Sprintf("not pasted: the input holds at most %d lines; send long text with 'pfschat send NAME -'", maxInputLines), true)
		return msg, false
	}
	var b strings.Builder
	for _, r := range msg.Content {
		switch {
		case r == '\n':
			b.WriteRune(r)
		case r < 0x20:
			b.WriteRune(0x2400 + r)
			m.pictured = true
		case r == 0x7f:
			b.WriteRune(0x2421)
			m.pictured = true
		case r >= 0x80 && r < 0xa0 || r == utf8.RuneError:
			m.setNotice(fmt.Sprintf("not pasted: it contains %U, which the input cannot show; send it with 'pfschat send NAME -'", r), true)
			return msg, false
		default:
			b.WriteRune(r)
		}
	}
	msg.Content = b.String()
	return msg, true
}

// inputText returns the input's text as typed and pasted.
func (m *mainScreen) inputText() string {
	s := m.input.Value()
	if !m.pictured {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0x2400 && r < 0x2420:
			return r - 0x2400
		case r == 0x2421:
			return 0x7f
		}
		return r
	}, s)
}

// setInput puts text in the input with the cursor at its end, and the end in view: the
// widget's SetValue leaves its view where it was (at the top after a reset), so the
// cursor of a restored draft longer than the input sat on a hidden line.
func (m *mainScreen) setInput(text string) {
	m.input.SetValue(text)
	m.input.MoveToEnd() // scrolls the cursor's line into view
}

func (m *mainScreen) resetInput() {
	m.input.Reset()
	m.pictured = false
}
