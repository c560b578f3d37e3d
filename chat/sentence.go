package chat

import "strings"

// packagePrefixes are the "pkg: " prefixes Go errors carry through the layers; a person
// reading an error needs none of them.
var packagePrefixes = []string{"chat: ", "storage: ", "ratchet: ", "client: ", "relay: ", "server: ", "payload: "}

// Sentence is an error as a person reads it: the first line of its text without package
// prefixes, with a part that repeats the one before it said once ("chat: sending:
// chat: sending: storage: disk full" reads "sending: disk full"), and without a part
// that only repeats an address said before ("ws://h:7878/v2/ws: dialing
// ws://h:7878/v2/ws: dial tcp …" reads "ws://h:7878/v2/ws: dial tcp …"). The typed
// error keeps every detail for code (errors.Is/As) and logs.
func Sentence(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	var parts []string
	said := make(map[string]bool) // the addresses said so far
	split := strings.Split(s, ": ")
	for i, p := range split {
		for trimmed := true; trimmed; {
			trimmed = false
			for _, pre := range packagePrefixes {
				if rest, ok := strings.CutPrefix(p+" ", pre); ok {
					p, trimmed = strings.TrimSuffix(rest, " "), true
				}
			}
		}
		if p == "" || p == strings.TrimSuffix(packagePrefixes[0], ": ") || isPackageName(p) {
			continue
		}
		if p == "invalid argument" && len(parts) > 0 && i < len(split)-1 {
			// storage.ErrInvalid's words between the context and the detail that says
			// what is wrong ("nickname for bob: invalid argument: a nickname is at most
			// 64 bytes"): the detail says it better.
			continue
		}
		if len(parts) > 0 && parts[len(parts)-1] == p {
			continue
		}
		if f := strings.Fields(p); len(f) > 0 && len(f) <= 2 && strings.Contains(f[len(f)-1], "://") {
			// An address, or a word and an address ("dialing ws://…"): said once.
			if said[f[len(f)-1]] {
				continue
			}
			said[f[len(f)-1]] = true
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ": ")
}

func isPackageName(p string) bool {
	for _, pre := range packagePrefixes {
		if p == strings.TrimSuffix(pre, ": ") {
			return true
		}
	}
	return false
}
