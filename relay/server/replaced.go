package server

import (
	"context"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/storage"
)

// replacedStore is what the login path needs to recognise a replaced card.
type replacedStore interface {
	ReplacedCard(ctx context.Context, cardID string) (storage.Account, error)
}

var _ replacedStore = (*storage.Relay)(nil)

// replacedLogin answers a login with a card that replace_card or recover replaced,
// when its key proof is valid (the device that holds the old key): card_replaced,
// so that device can tell its user the identity was replaced elsewhere, instead of a
// bare login_failed. It reports whether it answered.
func (c *conn) replacedLogin(ctx context.Context, f *relay.Frame) bool {
	rs, ok := c.s.dir.(replacedStore)
	if !ok {
		return false
	}
	a, err := rs.ReplacedCard(ctx, f.CardID)
	if err != nil {
		return false
	}
	card, err := ratchet.ImportCard(string(a.Card))
	if err != nil {
		return false
	}
	if ratchet.VerifySignature(card.SigningKey, relay.LoginDomain, relay.LoginMessage(c.s.pub, c.challenge[:], c.binding[:]), f.Signature) != nil {
		return false
	}
	c.replyError(f.ID, relay.CodeCardReplaced, "this card was replaced by a newer card for "+a.Name+
		" (a reset or a recovery on another device): it can no longer log in", "")
	return true
}
