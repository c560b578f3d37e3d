package relay

// The strict decoder's key rules, which encoding/json does not enforce: a key appears
// once per object, and matches a field's name exactly (package strictjson says why).

import (
	"errors"
	"reflect"
	"strconv"

	"pfschat/relay/strictjson"
)

// checkKeys refuses duplicate keys and keys that match a field only when case is
// ignored, in every object of b, as bad_field naming the key. Malformed JSON is left
// to the decoder (nil).
func checkKeys(b []byte) *FrameError {
	var ke *strictjson.KeyError
	if !errors.As(strictjson.CheckKeys(b, reflect.TypeFor[Frame]()), &ke) {
		return nil
	}
	if ke.Duplicate() {
		return &FrameError{Code: CodeBadField, Field: ke.Key, Reason: "duplicate key " + strconv.Quote(truncate(ke.Key, 32))}
	}
	return &FrameError{Code: CodeBadField, Field: ke.Key, Reason: "unknown field (did you mean " + strconv.Quote(ke.Want) + "? names are case-sensitive)"}
}
