// Package strictjson checks the member names of JSON input against the two rules that
// encoding/json does not enforce: a member appears once per object (encoding/json lets
// the last copy win), and a member of an object decoded into a struct names one of its
// fields exactly (encoding/json also takes "Type" or "TYPE" for "type", and "ſ" for
// "s"). Either would let two readers of one message (a proxy, a logger, another
// implementation) disagree about what it says. The relay's frame decoder and the
// daemon's JSON-RPC decoder check their input with it, then decode it with
// encoding/json (DisallowUnknownFields refuses the members no field takes).
//
//	if err := strictjson.CheckKeys(data, reflect.TypeFor[Frame]()); err != nil {
//		// err is a *KeyError naming the member
//	}
//
// It lives under relay/ because both the relay and chat use it, and chat may import
// only the relay's packages, ratchet and storage.
package strictjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// KeyError is a member CheckKeys refuses.
type KeyError struct {
	// Key is the member as sent.
	Key string
	// Want is, for a member that matches a field only when case is ignored, the
	// field's name; empty for a duplicate.
	Want string
	// Path is where the object holding the member is: "" for the top level, else
	// member names and array indexes, as in "params" or "items[2].limits".
	Path string
}

// Duplicate says whether the member appears twice in its object.
func (e *KeyError) Duplicate() bool { return e.Want == "" }

func (e *KeyError) Error() string {
	where := ""
	if e.Path != "" {
		where = " in " + strconv.Quote(truncate(e.Path, maxQuoted))
	}
	if e.Duplicate() {
		return "member " + strconv.Quote(truncate(e.Key, maxQuoted)) + where + " appears twice; send each member once"
	}
	return "member " + strconv.Quote(truncate(e.Key, maxQuoted)) + where + " is not " + strconv.Quote(e.Want) +
		": member names are case-sensitive"
}

// maxQuoted bounds what an error quotes of a member name or path, which come from the
// sender and may be long.
const maxQuoted = 64

// truncate cuts s to at most n bytes, at a rune boundary, marking the cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// maxDepth is encoding/json's own nesting limit: deeper input is malformed to its
// decoder, so CheckKeys leaves it to that decoder.
const maxDepth = 10000

// CheckKeys reports the first member of data that appears twice in its object, or
// that names a field of the struct its object decodes into (as encoding/json would
// decode data into a value of type t) only when case is ignored. It follows t into
// struct fields, pointers, slices, arrays and map values; the keys of a map, and the
// objects under an interface value, are checked for duplicates only; what a type
// decodes itself (a json.Unmarshaler such as json.RawMessage) is not looked into: its
// decoder checks it. Malformed JSON is left to the decoder that follows (nil). The
// error is a *KeyError.
func CheckKeys(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if ke, _ := walkValue(dec, t, 0); ke != nil {
		return ke
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// walkValue reads one value, which decodes into t (nil: no type known); ok is false
// when the input is malformed (the decoder will say so).
func walkValue(dec *json.Decoder, t reflect.Type, depth int) (ke *KeyError, ok bool) {
	if depth > maxDepth {
		return nil, false
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && reflect.PointerTo(t).Implements(unmarshalerType) {
		var skip json.RawMessage
		return nil, dec.Decode(&skip) == nil
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, false
	}
	d, isDelim := tok.(json.Delim)
	if !isDelim {
		return nil, true
	}
	switch d {
	case '{':
		if ke, ok := walkObject(dec, t, depth); ke != nil || !ok {
			return ke, ok
		}
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if ke, ok := walkValue(dec, elem, depth+1); ke != nil || !ok {
				if ke != nil {
					ke.Path = joinPath("["+strconv.Itoa(i)+"]", ke.Path)
				}
				return ke, ok
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return nil, false
	}
	return nil, true
}

// walkObject reads an object's members, its '{' already read.
func walkObject(dec *json.Decoder, t reflect.Type, depth int) (ke *KeyError, ok bool) {
	var fields *structFields
	var mapElem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = fieldsOf(t)
		case reflect.Map:
			mapElem = t.Elem()
		}
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, isKey := tok.(string)
		if !isKey {
			return nil, false
		}
		if seen[key] {
			return &KeyError{Key: key}, true
		}
		seen[key] = true
		valueType := mapElem
		if fields != nil {
			ft, exact := fields.byName[key]
			if !exact {
				if want, folds := fields.folded(key); folds {
					return &KeyError{Key: key, Want: want}, true
				}
			}
			valueType = ft // nil for a member no field takes: the decoder refuses it
		}
		if ke, ok := walkValue(dec, valueType, depth+1); ke != nil || !ok {
			if ke != nil {
				ke.Path = joinPath(key, ke.Path)
			}
			return ke, ok
		}
	}
	return nil, true
}

func joinPath(outer, inner string) string {
	switch {
	case inner == "":
		return outer
	case inner[0] == '[':
		return outer + inner
	}
	return outer + "." + inner
}

// structFields are the JSON names of a struct's fields, as encoding/json finds them.
type structFields struct {
	byName map[string]reflect.Type
	names  []string
}

// folded returns the field name that key matches when case is ignored (encoding/json's
// rule is bytes.EqualFold).
func (f *structFields) folded(key string) (string, bool) {
	for _, n := range f.names {
		if strings.EqualFold(n, key) {
			return n, true
		}
	}
	return "", false
}

var fieldCache sync.Map // reflect.Type -> *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f, _ := fieldCache.LoadOrStore(t, buildFields(t))
	return f.(*structFields)
}

// buildFields follows encoding/json's rules: exported fields (and the fields of
// embedded structs, exported or not, promoted unless the embedding field is named by
// its tag), named by their tag's name when it is valid, else by the Go name; "-"
// omits a field; of fields with one name, the shallowest wins, then the tagged one,
// and a tie hides them all.
func buildFields(t reflect.Type) *structFields {
	type candidate struct {
		name   string
		typ    reflect.Type
		depth  int
		tagged bool
	}
	var found []candidate
	level := []reflect.Type{t}
	visited := map[reflect.Type]bool{}
	for depth := 0; len(level) > 0; depth++ {
		var next []reflect.Type
		for _, st := range level {
			if visited[st] {
				continue
			}
			visited[st] = true
			for i := range st.NumField() {
				sf := st.Field(i)
				ft := sf.Type
				if sf.Anonymous && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if sf.Anonymous {
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validTag(name) {
					name = ""
				}
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, ft)
					continue
				}
				tagged := name != ""
				if !tagged {
					name = sf.Name
				}
				found = append(found, candidate{name: name, typ: sf.Type, depth: depth, tagged: tagged})
			}
		}
		level = next
	}
	byName := map[string][]candidate{}
	for _, c := range found {
		byName[c.name] = append(byName[c.name], c)
	}
	out := &structFields{byName: map[string]reflect.Type{}}
	for name, cs := range byName {
		shallowest := cs[0].depth
		for _, c := range cs {
			shallowest = min(shallowest, c.depth)
		}
		var top, tagged []candidate
		for _, c := range cs {
			if c.depth == shallowest {
				top = append(top, c)
				if c.tagged {
					tagged = append(tagged, c)
				}
			}
		}
		switch {
		case len(top) == 1:
			out.byName[name] = top[0].typ
		case len(tagged) == 1:
			out.byName[name] = tagged[0].typ
		default:
			continue
		}
		out.names = append(out.names, name)
	}
	return out
}

// validTag is encoding/json's test of a tag name.
func validTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
