package daemon

import (
	"context"
	"errors"

	"pfschat/chat"
	"pfschat/storage"
)

// The methods of message requests, blocking, removing, nicknames and muting (issue 13
// points 10 and 11; API.md "Contacts: requests, blocking, nicknames").

// The params of setNickname and setMuted.
type (
	NicknameParams struct {
		Name     string `json:"name"`
		Nickname string `json:"nickname"`
	}
	MutedParams struct {
		Name  string `json:"name"`
		Muted bool   `json:"muted"`
	}
)

// contactMethod runs one of these methods; ok is false for any other method.
func (s *Server) contactMethod(ctx context.Context, req *Request) (res any, e *Error, ok bool) {
	byName := map[string]func(context.Context, string) error{
		"acceptRequest": s.c.AcceptRequest, "block": s.c.Block, "unblock": s.c.Unblock, "removeContact": s.c.RemoveContact,
	}
	switch req.Method {
	case "acceptRequest", "block", "unblock", "removeContact":
		name, e := nameParam(req)
		if e != nil {
			return nil, e, true
		}
		if err := byName[req.Method](ctx, name); err != nil {
			return nil, errorFor(err), true
		}
		return empty{}, nil, true
	case "setNickname":
		var p struct { // NicknameParams, "nickname" required: absent is no way to say "remove it"
			Name     string  `json:"name"`
			Nickname *string `json:"nickname"`
		}
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e, true
		}
		if p.Name == "" || p.Nickname == nil {
			return nil, NewError(CodeInvalidParams, `"name" and "nickname" are required ("" removes the nickname)`), true
		}
		if err := s.c.SetNickname(ctx, p.Name, *p.Nickname); errors.Is(err, storage.ErrInvalid) {
			// over 64 bytes, not UTF-8 or with a control character: the caller's mistake
			return nil, NewError(CodeInvalidParams, "%v", err), true
		} else if err != nil {
			return nil, errorFor(err), true
		}
		return empty{}, nil, true
	case "setMuted":
		var p struct { // MutedParams, "muted" required: absent is no way to say "unmute"
			Name  string `json:"name"`
			Muted *bool  `json:"muted"`
		}
		if e := DecodeParams(req.Params, &p); e != nil {
			return nil, e, true
		}
		if p.Name == "" || p.Muted == nil {
			return nil, NewError(CodeInvalidParams, `"name" and "muted" are required`), true
		}
		if err := s.c.SetMuted(ctx, p.Name, *p.Muted); err != nil {
			return nil, errorFor(err), true
		}
		return empty{}, nil, true
	}
	return nil, nil, false
}

// blockErrorCode maps the errors of these methods to their codes (errorFor).
func blockErrorCode(err error) (int, bool) {
	switch {
	case errors.Is(err, chat.ErrBlocked):
		return CodeBlocked, true
	case errors.Is(err, chat.ErrNotARequest):
		return CodeNotARequest, true
	}
	return 0, false
}
