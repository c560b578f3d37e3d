package relay

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// jsonTags returns the JSON names of t's fields (a struct type).
func jsonTags(t reflect.Type) []string {
	var tags []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			tags = append(tags, name)
		}
	}
	return tags
}

var inlineFrame = regexp.MustCompile("`(\\{\"type\":[^`]*)`")

// protocolExamples returns the text of PROTOCOL.md's ```json blocks and of its inline
// code spans that hold a frame (`{"type":…}`), with the line each starts on.
func protocolExamples(t *testing.T) (doc string, blocks []string, lines []int) {
	t.Helper()
	b, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc = string(b)
	var cur []string
	in := false
	for i, line := range strings.Split(doc, "\n") {
		switch {
		case !in && strings.HasPrefix(line, "```json"):
			in, cur = true, nil
			lines = append(lines, i+2)
		case in && strings.HasPrefix(line, "```"):
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		default:
			for _, m := range inlineFrame.FindAllStringSubmatch(line, -1) {
				blocks, lines = append(blocks, m[1]), append(lines, i+1)
			}
		}
	}
	if len(blocks) < 20 {
		t.Fatalf("PROTOCOL.md has %d json examples; the parse is broken", len(blocks))
	}
	return doc, blocks, lines
}

// TestProtocolDocExamples keeps PROTOCOL.md's frame examples — what an implementer
// copies — and the frames the code reads and writes in step: every key an example
// uses is a field of Frame (or of the hello's limits, or a prekey count's kind), every
// type an example names is a frame type of this package, and the other way round every
// field and every frame type the code has is named in the document.
func TestProtocolDocExamples(t *testing.T) {
	doc, blocks, lines := protocolExamples(t)
	frameFields := jsonTags(reflect.TypeFor[Frame]())
	limitFields := jsonTags(reflect.TypeFor[FrameLimits]())
	countKinds := []string{"signed", "one_time", "kem_last_resort", "kem_one_time"}
	types := packageStringConsts(t, "Type")
	known := slices.Concat(frameFields, limitFields, countKinds)

	key := regexp.MustCompile(`"([a-z0-9_]+)"\s*:`)
	typ := regexp.MustCompile(`"type"\s*:\s*"([a-z0-9_]+)"`)
	used := map[string]bool{}
	for i, b := range blocks {
		for _, m := range key.FindAllStringSubmatch(b, -1) {
			used[m[1]] = true
			if !slices.Contains(known, m[1]) {
				t.Errorf("PROTOCOL.md line %d: an example uses the key %q, which no frame has", lines[i], m[1])
			}
		}
		for _, m := range typ.FindAllStringSubmatch(b, -1) {
			used[m[1]] = true
			if !slices.Contains(slices.Collect(maps.Values(types)), m[1]) {
				t.Errorf("PROTOCOL.md line %d: an example has the type %q, which is not a frame type", lines[i], m[1])
			}
		}
	}

	// Every field and frame type is named in the document: in an example, or as `name`.
	named := func(name string) bool { return used[name] || strings.Contains(doc, "`"+name+"`") }
	for _, f := range slices.Concat(frameFields, limitFields) {
		if !named(f) {
			t.Errorf("the frame field %q is nowhere in PROTOCOL.md", f)
		}
	}
	for name, v := range types {
		if !named(v) {
			t.Errorf("%s (%q) is nowhere in PROTOCOL.md", name, v)
		}
	}
	// What the parses found is what the code has: spot-check, so that a change of how
	// the fields or constants are declared cannot make this pass vacuously.
	for _, want := range []string{"from_card_id", "retry_after_ms", "capability"} {
		if !slices.Contains(frameFields, want) {
			t.Errorf("Frame's fields as parsed lack %q: %v", want, frameFields)
		}
	}
	if types["TypeBlobChunk"] != TypeBlobChunk || types["TypeSynced"] != TypeSynced || len(types) < 30 {
		t.Errorf("the frame types as parsed: %v", types)
	}
}
