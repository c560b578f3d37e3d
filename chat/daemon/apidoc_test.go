package daemon_test

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"pfschat/chat"
	"pfschat/chat/chattest"
	"pfschat/chat/daemon"
	"pfschat/relay/relaytest"
)

// apiDoc returns the lines of API.md from the heading that starts with from up to the
// next heading of the same level.
func apiDoc(t *testing.T, from string) []string {
	t.Helper()
	b, err := os.ReadFile("API.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = strings.HasPrefix(line, from)
			continue
		}
		if in {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		t.Fatalf("API.md has no section %q", from)
	}
	return out
}

var docMethodRow = regexp.MustCompile("^\\| `([a-zA-Z]+)` \\|")

// tableNames are the first-column names of the tables in lines.
func tableNames(lines []string) map[string]bool {
	out := map[string]bool{}
	for _, l := range lines {
		if m := docMethodRow.FindStringSubmatch(l); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// servedMethods are the method names the server's dispatch switches on req.Method
// (server.go's call and contactmethods.go's contactMethod) list.
func servedMethods(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range []string{"server.go", "contactmethods.go"} {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sw, ok := n.(*ast.SwitchStmt)
			if !ok {
				return true
			}
			sel, ok := sw.Tag.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Method" {
				return true
			}
			for _, st := range sw.Body.List {
				for _, e := range st.(*ast.CaseClause).List {
					lit, ok := e.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: a method case that is not a string literal: %T", fset.Position(e.Pos()), e)
					}
					s, _ := strconv.Unquote(lit.Value)
					out[s] = true
				}
			}
			return true
		})
	}
	return out
}

// API.md's method tables name exactly the methods the server serves, and every one
// refuses an unknown member in its params (invalid_params), as API.md says of all.
func TestAPIDocMethodsAreServed(t *testing.T) {
	doc := tableNames(apiDoc(t, "## Methods"))
	served := servedMethods(t)
	if len(doc) < 10 || len(served) < 10 {
		t.Fatalf("read %d documented and %d served methods", len(doc), len(served))
	}
	for m := range served {
		if !doc[m] {
			t.Errorf("the server serves %q, which API.md does not document", m)
		}
	}
	for m := range doc {
		if !served[m] {
			t.Errorf("API.md documents %q, which the server does not serve", m)
		}
	}

	r := relaytest.Start(t)
	o := startOwner(t, r, chattest.NewUser(t, r, "bob"))
	cl := dial(t, o.sock)
	for _, m := range slices.Sorted(maps.Keys(doc)) {
		err := cl.Call(t.Context(), m, map[string]int{"noSuchMember": 1}, nil)
		var re *daemon.Error
		if !errors.As(err, &re) || re.Code != daemon.CodeInvalidParams {
			t.Errorf("%s with an unknown member in its params: %v, want invalid_params", m, err)
		}
	}
	err := cl.Call(t.Context(), "noSuchMethod", nil, nil)
	var re *daemon.Error
	if !errors.As(err, &re) || re.Code != daemon.CodeMethodNotFound {
		t.Errorf("an undocumented method: %v, want method_not_found", err)
	}
}

// API.md's notification table names exactly the Notify methods, and its error table
// exactly the codes and their names.
func TestAPIDocNotificationsAndErrors(t *testing.T) {
	doc := tableNames(apiDoc(t, "## Notifications"))
	consts := map[string]bool{}
	f, err := parser.ParseFile(token.NewFileSet(), "api.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && strings.HasPrefix(vs.Names[0].Name, "Notify") {
			s, _ := strconv.Unquote(vs.Values[0].(*ast.BasicLit).Value)
			consts[s] = true
		}
		return true
	})
	if len(consts) == 0 || !maps.Equal(doc, consts) {
		t.Errorf("API.md's notifications %v, the code's %v", slices.Sorted(maps.Keys(doc)), slices.Sorted(maps.Keys(consts)))
	}

	row := regexp.MustCompile("^\\| (-?\\d+) \\| `([a-z_]+)` \\|")
	codes := map[int]string{}
	for _, l := range apiDoc(t, "## Errors") {
		if m := row.FindStringSubmatch(l); m != nil {
			c, _ := strconv.Atoi(m[1])
			codes[c] = m[2]
		}
	}
	if !maps.Equal(codes, daemon.CodeNames) {
		t.Errorf("API.md's error codes %v, the code's %v", codes, daemon.CodeNames)
	}
}

// API.md's example notifications (but the one abridged with "…") are byte for byte what
// the owner sends for the events they stand for, and the client reads them; the
// requests the example names decode strictly, with their method's params.
func TestAPIDocExample(t *testing.T) {
	lines := apiDoc(t, "## Example")
	checked := map[string]bool{}
	for _, l := range lines {
		data, ok := strings.CutPrefix(l, "data: ")
		if !ok || strings.Contains(data, "…") {
			continue
		}
		var n daemon.Notification
		if err := json.Unmarshal([]byte(data), &n); err != nil {
			t.Fatalf("API.md's example %s: %v", data, err)
		}
		ev, err := n.Event()
		if err != nil {
			t.Fatalf("the client refuses API.md's example %s: %v", data, err)
		}
		var ce chat.Event
		switch n.Method {
		case daemon.NotifyMarkedRead:
			ce = chat.Event{Kind: chat.MessagesRead, Contact: ev.Contact}
		case daemon.NotifyDeleted:
			ce = chat.Event{Kind: chat.MessagesDeleted, Contact: ev.Contact}
			if ev.ID != 0 {
				ce.Message = &chat.Message{ID: ev.ID, Contact: ev.Contact}
			}
		default:
			t.Fatalf("API.md's example shows a %q notification this test does not know", n.Method)
		}
		sent, ok := daemon.EventNotification(ev.Subscription, ce)
		b, _ := json.Marshal(sent)
		if !ok || string(b) != data {
			t.Errorf("API.md's example\n\t%s\nthe owner sends\n\t%s", data, b)
		}
		checked[n.Method] = true
	}
	if !checked[daemon.NotifyMarkedRead] || !checked[daemon.NotifyDeleted] {
		t.Errorf("API.md's example shows no markedRead or deleted notification (checked %v)", checked)
	}

	requests := 0
	for _, l := range lines {
		for _, m := range regexp.MustCompile("`(\\{\"jsonrpc\".*?\\})`").FindAllStringSubmatch(l, -1) {
			req, _, rerr := daemon.DecodeRequest([]byte(m[1]))
			if rerr != nil {
				t.Fatalf("API.md's example request %s: %v", m[1], rerr)
			}
			params := map[string]any{"markRead": new(daemon.MarkReadParams), "deleteMessage": new(daemon.DeleteMessageParams)}[req.Method]
			if params == nil {
				t.Fatalf("API.md's example request %s: a method this test does not know", m[1])
			}
			if e := daemon.DecodeParams(req.Params, params); e != nil {
				t.Fatalf("API.md's example request %s: %v", m[1], e)
			}
			requests++
		}
	}
	if requests == 0 {
		t.Error("API.md's example names no request in backquotes")
	}
}
