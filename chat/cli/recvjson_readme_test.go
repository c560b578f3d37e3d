package cli

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"pfschat/chat"
)

// TestRecvJSONFieldsInTheREADME: every field recv --json (and contacts --json) can print, and every state its
// "file" object can be in, is named in the README's section on the headless commands,
// where scripts look for them.
func TestRecvJSONFieldsInTheREADME(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "## Headless commands (devices and scripts)")
	end := strings.Index(readme, "## Attachments")
	if start < 0 || end < start {
		t.Fatal("README has no section \"Headless commands (devices and scripts)\" before \"Attachments\"")
	}
	section := readme[start:end]
	_, file, ok := strings.Cut(section, `"file":{`)
	file, _, _ = strings.Cut(file, "}")
	if !ok {
		t.Fatal(`the README's headless section shows no "file":{…} object`)
	}
	for _, tc := range []struct {
		typ  reflect.Type
		text string
	}{{reflect.TypeFor[jsonMessage](), section}, {reflect.TypeFor[jsonFile](), file}, {reflect.TypeFor[jsonContact](), section}} {
		for f := range tc.typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !strings.Contains(tc.text, `"`+name+`"`) {
				t.Errorf("the --json %s field %q is not in the README's headless section", tc.typ.Name(), name)
			}
		}
	}
	// An incoming file's states (an outgoing one is never printed by recv).
	for _, s := range []chat.AttachmentState{chat.AttachmentAvailable, chat.AttachmentFetching, chat.AttachmentDownloaded, chat.AttachmentFailed} {
		if !strings.Contains(section, "`"+s.String()+"`") {
			t.Errorf("the file state %q is not in the README's headless section", s)
		}
	}
}
