package relay

// The strict decoder's key rules, which encoding/json does not enforce: a key appears
// once per object (encoding/json lets the last copy win), and matches a field's name
// exactly (encoding/json also takes "Type" or "TYPE" for "type"). Either would let two
// readers of one frame (a proxy, a logger, another implementation) disagree about what
// it says.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// frameKeys are the JSON names of Frame's and FrameLimits' fields; foldedKeys maps
// their lower-case forms to them.
var frameKeys, foldedKeys = jsonNames(reflect.TypeFor[Frame](), reflect.TypeFor[FrameLimits]())

func jsonNames(types ...reflect.Type) (exact map[string]bool, folded map[string]string) {
	exact, folded = map[string]bool{}, map[string]string{}
	for _, t := range types {
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				exact[name] = true
				folded[strings.ToLower(name)] = name
			}
		}
	}
	return exact, folded
}

// maxKeyDepth bounds the nesting checkKeys follows (encoding/json refuses deeper
// input anyway; client frames nest two levels at most).
const maxKeyDepth = 32

// checkKeys refuses duplicate keys and keys that match a field only when case is
// ignored, in every object of b. Malformed JSON is left to the decoder (nil).
func checkKeys(b []byte) *FrameError {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	fe, _ := walkValue(dec, 0)
	return fe
}

// walkValue reads one value; ok is false when the input is malformed (the decoder
// will say so).
func walkValue(dec *json.Decoder, depth int) (fe *FrameError, ok bool) {
	if depth > maxKeyDepth {
		return nil, false
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
				return &FrameError{Code: CodeBadField, Field: key, Reason: "duplicate key " + strconv.Quote(truncate(key, 32))}, true
			}
			seen[key] = true
			if name, folds := foldedKeys[strings.ToLower(key)]; folds && !frameKeys[key] {
				return &FrameError{Code: CodeBadField, Field: key, Reason: "unknown field (did you mean " + strconv.Quote(name) + "? names are case-sensitive)"}, true
			}
			if fe, ok := walkValue(dec, depth+1); fe != nil || !ok {
				return fe, ok
			}
		}
	case '[':
		for dec.More() {
			if fe, ok := walkValue(dec, depth+1); fe != nil || !ok {
				return fe, ok
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return nil, false
	}
	return nil, true
}
