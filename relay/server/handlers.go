package server

// The handlers of the protocol's requests, one per frame type, run by the read loop.

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"pfschat/ratchet"
	"pfschat/relay"
	"pfschat/storage"
)

// maxLoginFailures closes a connection that keeps failing key proofs.
const maxLoginFailures = 5

func (c *conn) handle(f *relay.Frame) bool {
	switch f.Type {
	case relay.TypeHello:
		return c.onHello(f)
	case relay.TypePing:
		c.send(&relay.Frame{Type: relay.TypePong, ID: f.ID})
		return true
	case relay.TypeRegister:
		c.onRegister(f)
		return true
	case relay.TypeLookup:
		c.onLookup(f)
		return true
	case relay.TypeLookupCard:
		c.onLookupCard(f)
		return true
	case relay.TypeLogin:
		return c.onLogin(f)
	case relay.TypeRecover:
		c.onRecover(f) // recovery.go
		return true
	}
	if c.acct == nil {
		c.replyError(f.ID, relay.CodeNotLoggedIn, f.Type+" needs a logged-in connection: login first", "")
		return true
	}
	switch f.Type {
	case relay.TypeSend:
		return c.onSend(f)
	case relay.TypeAck:
		return c.onAck(f)
	case relay.TypeUploadPreKeys:
		c.onUploadPreKeys(f)
	case relay.TypePreKeyStatus:
		c.onPreKeyStatus(f)
	case relay.TypeFetchBundle:
		c.onFetchBundle(f)
	case relay.TypeReplaceCard:
		if c.allowAccountWrite(f) {
			c.onReplaceCard(f)
		}
	case relay.TypeLogoutAll:
		c.onLogoutAll(f)
	case relay.TypeDeleteAccount:
		return c.onDeleteAccount(f)
	case relay.TypeBlock, relay.TypeUnblock:
		if c.allowAccountWrite(f) {
			c.onBlock(f)
		}
	case relay.TypeSetRecovery:
		if c.allowAccountWrite(f) {
			c.onSetRecovery(f) // recovery.go
		}
	case relay.TypeBlobBegin:
		c.onBlobBegin(f)
	case relay.TypeBlobResume:
		c.onBlobResume(f)
	case relay.TypeBlobPut:
		c.onBlobPut(f)
	case relay.TypeBlobCommit:
		c.onBlobCommit(f)
	case relay.TypeBlobGet:
		c.onBlobGet(f)
	case relay.TypeBlobDone:
		c.onBlobDone(f)
	}
	return true
}

func (c *conn) onHello(f *relay.Frame) bool {
	best := 0
	for _, v := range f.Versions {
		for _, s := range relay.SupportedVersions {
			if v == s && v > best {
				best = v
			}
		}
	}
	if best == 0 {
		c.replyError(f.ID, relay.CodeUnsupportedVersion, "this relay speaks protocol versions "+strconv.Itoa(relay.SupportedVersions[0])+".."+strconv.Itoa(relay.SupportedVersions[len(relay.SupportedVersions)-1]), "")
		c.close()
		return false
	}
	c.version = best
	c.send(&relay.Frame{Type: relay.TypeOK, ID: f.ID, Version: best})
	return true
}

// opCtx bounds one store operation done on behalf of a frame. It is not a child of
// c.ctx: a child would leave its parent an (emptied) map of children for the rest of
// the connection, about 250 bytes per idle connection, to cancel operations that are
// bounded by this timeout and finish in milliseconds anyway.
func (c *conn) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (c *conn) internal(reqID uint64, what string, err error) {
	c.s.log.Error(what, "conn", c.id, "err", err)
	c.replyError(reqID, errorCode(err), what+" failed on the relay; retry later", "")
}

func (c *conn) onRegister(f *relay.Frame) {
	if !c.allowRegister(f) {
		return
	}
	card, ok := c.parseCard(f)
	if !ok {
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	if err := card.SignAsRelay(c.s.priv); err != nil {
		c.internal(f.ID, "signing the card", err)
		return
	}
	export := card.Export()
	if err := c.s.purgeStaleQueue(ctx, card.Identity); err != nil {
		c.internal(f.ID, "dropping what an earlier account of the name left queued", err)
		return
	}
	err := c.createAccount(ctx, f, storage.Account{Name: card.Identity, CardID: card.ID(), Card: []byte(export), CreatedAt: c.s.now().UTC(),
		Recovery: c.registerVerifier(f, card.Identity)})
	if errors.Is(err, storage.ErrBadInvite) {
		c.s.m.limited(LimitRegistrationPolicy)
		c.replyError(f.ID, relay.CodeInviteRequired, "the invite code is unknown, used up or expired; ask the relay's operator for a new one", LimitRegistrationPolicy)
		return
	}
	if errors.Is(err, storage.ErrExists) {
		// A repeated registration of the same card (its answer was lost) succeeds again.
		if acc, aerr := c.s.cachedAccount(ctx, card.Identity); aerr == nil && acc.cardID == card.ID() {
			c.send(&relay.Frame{Type: relay.TypeCard, ID: f.ID, Card: acc.export})
			return
		}
		c.replyError(f.ID, relay.CodeNameTaken, "the name "+strconv.Quote(card.Identity)+" is already registered; pick another", "")
		return
	}
	if err != nil {
		c.internal(f.ID, "storing the card", err)
		return
	}
	c.s.log.Info("registered card", "conn", c.id, "name", card.Identity)
	c.send(&relay.Frame{Type: relay.TypeCard, ID: f.ID, Card: export})
}

// parseCard imports and checks a card from a register or replace_card frame.
func (c *conn) parseCard(f *relay.Frame) (*ratchet.Card, bool) {
	card, err := ratchet.ImportCard(f.Card)
	if err != nil {
		c.replyError(f.ID, relay.CodeBadCard, "card does not parse: "+err.Error(), "")
		return nil, false
	}
	if err := ratchet.ValidateName(card.Identity); err != nil {
		c.replyError(f.ID, relay.CodeInvalidName, "names are 1 to 32 of a-z 0-9 . _ -", "")
		return nil, false
	}
	if err := card.Verify(); err != nil {
		c.replyError(f.ID, relay.CodeBadCard, "card does not verify: "+err.Error(), "")
		return nil, false
	}
	return card, true
}

// namedAccount looks up the account a lookup or bundle request names, answering the
// request with the reason when the name is malformed or unknown.
func (c *conn) namedAccount(ctx context.Context, f *relay.Frame) (*account, bool) {
	if err := ratchet.ValidateName(f.Name); err != nil {
		c.replyError(f.ID, relay.CodeInvalidName, "names are 1 to 32 of a-z 0-9 . _ -", "")
		return nil, false
	}
	acc, err := c.s.cachedAccount(ctx, f.Name)
	if errors.Is(err, storage.ErrNotFound) {
		c.replyError(f.ID, relay.CodeNotFound, "no card registered under "+strconv.Quote(f.Name), "")
		return nil, false
	}
	if err != nil {
		c.internal(f.ID, "looking up the card", err)
		return nil, false
	}
	return acc, true
}

func (c *conn) onLookup(f *relay.Frame) {
	if !c.allowLookup(f) {
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	acc, ok := c.namedAccount(ctx, f)
	if !ok {
		return
	}
	c.send(&relay.Frame{Type: relay.TypeCard, ID: f.ID, Card: acc.export})
}

// onLookupCard answers lookup_card: the card with that ID when it is the current card
// of its name, or, marked replaced, when replace_card or recover replaced it (kept as
// stored, relay-signed); an unknown card is not_found. It counts as a lookup
// (lookup_per_requester).
func (c *conn) onLookupCard(f *relay.Frame) {
	if !c.allowLookup(f) {
		return
	}
	if !relay.ValidCardID(f.CardID) {
		c.replyError(f.ID, relay.CodeBadField, "card_id is 64 lower-case hex characters", "")
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	a, err := c.s.dir.AccountByCardID(ctx, f.CardID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.internal(f.ID, "looking up the card", err)
		return
	}
	if err == nil {
		acc, err := c.s.cachedAccount(ctx, a.Name)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			c.internal(f.ID, "looking up the card", err)
			return
		}
		if err == nil && acc.cardID == f.CardID {
			c.send(&relay.Frame{Type: relay.TypeCard, ID: f.ID, Card: acc.export})
			return
		}
	}
	if rs, ok := c.s.dir.(replacedStore); ok {
		old, err := rs.ReplacedCard(ctx, f.CardID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			c.internal(f.ID, "looking up the card", err)
			return
		}
		if err == nil && len(old.Card) > 0 {
			c.send(&relay.Frame{Type: relay.TypeCard, ID: f.ID, Card: string(old.Card), Replaced: true})
			return
		}
	}
	c.replyError(f.ID, relay.CodeNotFound, "no card with ID "+f.CardID, "")
}

func (c *conn) onLogin(f *relay.Frame) bool {
	if c.acct != nil {
		c.replyError(f.ID, relay.CodeAlreadyLoggedIn, "this connection is already logged in", "")
		return true
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	c.loginDeletions = c.s.deletions.Load() // before the look: loggedIn checks again if it moved
	a, err := c.s.dir.AccountByCardID(ctx, f.CardID)
	var acc *account
	if err == nil {
		acc, err = accountFromStore(a)
	}
	if err == nil {
		// Only the name's current card may log in; a replaced card may not.
		var cur *account
		if cur, err = c.s.cachedAccount(ctx, acc.name); err == nil && cur.cardID != acc.cardID {
			err = storage.ErrNotFound
		}
	}
	if err == nil {
		err = ratchet.VerifySignature(acc.card.SigningKey, relay.LoginDomain, relay.LoginMessage(c.s.pub, c.challenge[:], c.binding[:]), f.Signature)
	}
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, ratchet.ErrBadSignature) {
			c.internal(f.ID, "checking the login", err)
			return true
		}
		c.loginFailures++
		if errors.Is(err, storage.ErrNotFound) && c.replacedLogin(ctx, f) { // replaced.go
			return true
		}
		c.replyError(f.ID, relay.CodeLoginFailed, "unknown card or bad key proof (sign LoginDomain ‖ relay key ‖ this connection's challenge ‖ channel binding)", "")
		if c.loginFailures >= maxLoginFailures {
			c.close()
			return false
		}
		return true
	}
	c.loggedIn(ctx, f.ID, acc)
	return true
}

func (c *conn) loggedIn(ctx context.Context, reqID uint64, acc *account) {
	c.acct = acc
	c.cardID.Store(&acc.cardID)
	c.loginTimer.Stop()
	c.s.m.loggedIn.Add(1)
	c.s.log.Debug("logged in", "conn", c.id, "name", acc.name)
	c.s.touchLogin(acc.name)

	c.dmu.Lock()
	c.backfilling = true
	if _, ok := c.s.hub.(ResyncingHub); ok {
		c.liveSent = make(map[int64]struct{})
	}
	c.dmu.Unlock()
	// Subscribe before reading the backlog so nothing committed in between is missed,
	// and before answering: a logout_all (or card replacement) the client's next
	// request causes on another connection must reach this one.
	c.unsub = c.s.hub.Subscribe(acc.name, c)
	if c.s.deletions.Load() != c.loginDeletions {
		// An account was deleted while this login was checked: if it was this one, the
		// deletion's notices may have come before this subscription and missed it (a
		// login racing its own account's delete_account stayed logged in as the deleted
		// card, subscribed to the name a new owner could take). Subscribed now, a later
		// notice reaches it; what already happened is read from the store.
		if a, err := c.s.dir.AccountByName(ctx, acc.name); errors.Is(err, storage.ErrNotFound) || (err == nil && a.CardID != acc.cardID) {
			c.acctGone.Store(true)
			c.kill(relay.CodeAccountDeleted, "", "the account this connection logged in with was deleted")
			return
		}
	}
	c.send(&relay.Frame{Type: relay.TypeOK, ID: reqID, Name: acc.name, CardID: acc.cardID})
	if hook := c.s.testHookLoggedIn.Load(); hook != nil {
		(*hook)()
	}
	c.s.wg.Add(1)
	go c.backfill(acc.name)

	if n, err := c.s.dir.CountPreKeys(ctx, acc.cardID, uint8(ratchet.OneTimePreKey)); err == nil && n < c.s.limits.LowPreKeyThreshold {
		if counts, err := c.s.preKeyCounts(ctx, acc.cardID); err == nil {
			c.send(&relay.Frame{Type: relay.TypeLowPreKeys, Counts: counts})
		}
	}
}

func (c *conn) onSend(f *relay.Frame) bool {
	r := newSendReq()
	r.reqID = f.ID
	r.msg.To = f.To
	r.msg.ClientID = f.ClientID
	r.msg.Body = f.Body
	return c.submitSend(r, f.TTL)
}

// onSendReq handles a send decoded by decodeSendReq, whose strings are still views
// into the frame (valid until this returns).
func (c *conn) onSendReq(r *sendReq, reqID uint64, to, clientID []byte, ttl int64) bool {
	r.reqID = reqID
	if name, ok := c.recipients[string(to)]; ok {
		r.msg.To = name
	} else {
		r.msg.To = string(to)
	}
	r.msg.ClientID = string(clientID)
	return c.submitSend(r, ttl)
}

// maxRecipients bounds a connection's cache of recipient names.
const maxRecipients = 256

// submitSend checks a send and hands it to the committer. r holds the request's id,
// recipient, client id and body; submitSend owns it from here.
func (c *conn) submitSend(r *sendReq, ttlSeconds int64) bool {
	to := r.msg.To
	if g := c.s.deletions.Load(); g != c.recipientsGen { // a name was freed: forget known names
		c.recipients, c.recipientsGen = nil, g
	}
	if short := c.s.disk.shortage(); short != shortOfNothing {
		c.s.m.limited(LimitMinFree)
		c.replyError(r.reqID, relay.CodeStorageFull, short.refusal()+": sends are refused until space returns (acks still work); retry later", LimitMinFree)
		r.release()
		return true
	}
	_, known := c.recipients[to]
	if !known {
		if err := ratchet.ValidateName(to); err != nil {
			c.replyError(r.reqID, relay.CodeInvalidName, "recipient names are 1 to 32 of a-z 0-9 . _ -", "")
			r.release()
			return true
		}
	}
	ttl := c.s.limits.MaxTTL
	if ttlSeconds > 0 {
		if time.Duration(ttlSeconds) > c.s.limits.MaxTTL/time.Second {
			c.s.m.limited(LimitMaxTTL)
			c.replyError(r.reqID, relay.CodeTTLTooLong, "ttl over "+strconv.FormatInt(int64(c.s.limits.MaxTTL/time.Second), 10)+" seconds", LimitMaxTTL)
			r.release()
			return true
		}
		ttl = time.Duration(ttlSeconds) * time.Second
	}
	if !known {
		var err error
		if _, cached := c.s.accounts.Load(to); !cached { // the usual case costs no context
			ctx, cancel := c.opCtx()
			_, err = c.s.cachedAccount(ctx, to)
			cancel()
		}
		if errors.Is(err, storage.ErrNotFound) {
			c.replyError(r.reqID, relay.CodeNotFound, "no card registered under "+strconv.Quote(to), "")
			r.release()
			return true
		}
		if err != nil {
			c.internal(r.reqID, "looking up the recipient", err)
			r.release()
			return true
		}
		// Once known, a recipient stays valid until an account is deleted (above).
		if c.recipients == nil || len(c.recipients) >= maxRecipients {
			c.recipients = make(map[string]string)
		}
		c.recipients[to] = to
	}
	if c.s.blocks.blocks(to, c.acct.name) {
		c.replyError(r.reqID, relay.CodeBlocked, to+" does not accept messages from you", "")
		r.release()
		return true
	}
	now := c.s.now().UTC()
	r.arrived = time.Now()
	r.c = c
	r.msg.From = c.acct.name
	r.msg.FromCardID = c.acct.cardID
	r.msg.ReceivedAt = now
	r.msg.ExpiresAt = now.Add(ttl)
	select {
	case c.inflight <- struct{}{}:
	case <-c.ctx.Done():
		r.release()
		return false
	}
	select {
	case c.s.cm.sends <- r:
	case <-c.s.cm.done: // shutting down: the send was not stored
		c.releaseSend()
		c.replyError(r.reqID, relay.CodeGoingAway, "relay is shutting down; resend after reconnecting", "")
		r.release()
	}
	return true
}

func (c *conn) onAck(f *relay.Frame) bool {
	a := newAckReq()
	a.reqID = f.ID
	a.ids = append(a.ids, f.IDs...)
	return c.submitAck(a)
}

// submitAck hands an ack to the committer, which owns it from here. Its ids are paid
// for first: one per message delivered on this connection and not yet acknowledged,
// the rest from ack_ids_per_second (see Limits.AckIDsPerSecond). An ack over the
// rate is dropped whole and spends nothing.
func (c *conn) submitAck(a *ackReq) bool {
	if n := int64(len(a.ids)); n > 0 {
		credit := c.delivered.Load() - c.ackCreditUsed
		if over := n - credit; over > 0 {
			if ok, retry := c.ackIDs.allowN(c.s.now(), float64(over)); !ok {
				id := a.reqID
				a.release()
				return c.ackOverRate(id, retry)
			}
			c.ackCreditUsed += credit
		} else {
			c.ackCreditUsed += n
		}
	}
	a.c, a.to, a.card = c, c.acct.name, c.acct.cardID
	select {
	case c.s.cm.acks <- a:
	case <-c.s.cm.done:
		c.replyError(a.reqID, relay.CodeGoingAway, "relay is shutting down; the messages will come again", "")
		a.release()
	}
	return true
}

var allPreKeyKinds = []ratchet.PreKeyKind{ratchet.SignedPreKey, ratchet.OneTimePreKey, ratchet.KEMLastResort, ratchet.KEMOneTime}

func (s *Server) preKeyCounts(ctx context.Context, cardID string) (map[string]int, error) {
	counts := make(map[string]int, 4)
	for _, k := range allPreKeyKinds {
		n, err := s.dir.CountPreKeys(ctx, cardID, uint8(k))
		if err != nil {
			return nil, err
		}
		counts[relay.PreKeyKindNames[k]] = n
	}
	return counts, nil
}

// onUploadPreKeys checks an upload in order of cost, so that a hostile frame is
// refused before it costs much: decoding, repeats and counts within the frame; then
// the per-card upload rate; then the store's counts; only then the signatures (one
// Ed25519 verification per key) and the write.
func (c *conn) onUploadPreKeys(f *relay.Frame) {
	parsed, newOneTime, ok := c.decodePreKeyUpload(f)
	if !ok || !c.allowPreKeyUpload(f) {
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	// The store's counts before the signatures (the cheaper refusal first); the store
	// judges them again in the write's own transaction (storePreKeys), which the up to
	// 210 Ed25519 checks stay outside of.
	if !c.preKeysFit(ctx, f.ID, newOneTime) {
		return
	}
	card := c.acct.card
	keys := make([]storage.StoredPreKey, len(parsed))
	for i, pk := range parsed {
		if err := pk.Verify(card); err != nil {
			c.replyError(f.ID, relay.CodeBadPreKey, "prekey "+strconv.Itoa(i)+" does not verify against your card: "+err.Error(), "")
			return
		}
		keys[i] = storage.StoredPreKey{Kind: uint8(pk.Kind), ID: pk.ID, Data: f.PreKeys[i]}
	}
	if !c.storePreKeys(ctx, f.ID, keys) {
		return
	}
	c.replyPreKeyStatus(ctx, f.ID)
}

// preKeysFit reports whether an upload's one-time keys fit beside those stored,
// answering too_many_prekeys when they do not.
func (c *conn) preKeysFit(ctx context.Context, reqID uint64, newOneTime map[ratchet.PreKeyKind]int) bool {
	max := c.s.limits.MaxOneTimePreKeys
	for kind, n := range newOneTime {
		have, err := c.s.dir.CountPreKeys(ctx, c.acct.cardID, uint8(kind))
		if err != nil {
			c.internal(reqID, "counting prekeys", err)
			return false
		}
		if have+n > max {
			c.tooManyPreKeys(reqID, strconv.Itoa(have)+" "+relay.PreKeyKindNames[kind]+" prekeys stored, "+strconv.Itoa(n)+" more would exceed "+strconv.Itoa(max))
			return false
		}
	}
	return true
}

// storePreKeys stores an upload's keys, judged by the store in the write's
// transaction against max_one_time_prekeys, so that uploads at the same instant are
// judged in turn, on this node or on any node sharing the store; false when it
// answered a refusal.
func (c *conn) storePreKeys(ctx context.Context, reqID uint64, keys []storage.StoredPreKey) bool {
	// Not for correctness (the store judges): a cluster's store would make uploads of
	// one card on this node lose compare-and-sets to each other and retry.
	mu := c.s.preKeyLock(c.acct.cardID)
	mu.Lock()
	defer mu.Unlock()
	_, err := c.s.dir.PutPreKeys(ctx, c.acct.cardID, keys, c.s.limits.MaxOneTimePreKeys)
	var full *storage.TooManyPreKeysError
	switch {
	case errors.As(err, &full):
		c.tooManyPreKeys(reqID, strconv.Itoa(full.Stored)+" "+relay.PreKeyKindNames[ratchet.PreKeyKind(full.Kind)]+" prekeys stored, "+strconv.Itoa(full.Adding)+" more would exceed "+strconv.Itoa(full.Max))
		return false
	case err != nil:
		c.internal(reqID, "storing prekeys", err)
		return false
	}
	return true
}

// preKeyLock is the lock of cardID's prekey uploads on this node (one of 64, by the
// card ID's first byte: card IDs are SHA-256 hex, so cards spread evenly).
func (s *Server) preKeyLock(cardID string) *sync.Mutex {
	i := 0
	if len(cardID) >= 2 {
		if b, err := strconv.ParseUint(cardID[:2], 16, 8); err == nil {
			i = int(b)
		}
	}
	return &s.preKeyLocks[i%len(s.preKeyLocks)]
}

// tooManyPreKeys refuses an upload for max_one_time_prekeys, and counts it in
// /metrics as every abuse limit is.
func (c *conn) tooManyPreKeys(reqID uint64, msg string) {
	c.s.m.limited(LimitMaxOneTimePreKeys)
	c.replyError(reqID, relay.CodeTooManyPreKeys, msg, LimitMaxOneTimePreKeys)
}

// decodePreKeyUpload parses an upload's prekeys and counts its one-time keys by kind
// (parsePreKeyUpload), answering the request itself when it refuses them.
func (c *conn) decodePreKeyUpload(f *relay.Frame) (parsed []ratchet.PublicPreKey, newOneTime map[ratchet.PreKeyKind]int, ok bool) {
	parsed, newOneTime, r := parsePreKeyUpload(f.PreKeys, c.s.limits.MaxOneTimePreKeys)
	switch {
	case r == nil:
		return parsed, newOneTime, true
	case r.tooMany:
		c.tooManyPreKeys(f.ID, r.msg)
	default:
		c.replyError(f.ID, relay.CodeBadPreKey, r.msg, "")
	}
	return nil, nil, false
}

// preKeyRefusal is why parsePreKeyUpload refused an upload: the message for the
// client, and whether it is the relay's limit (too_many_prekeys) rather than a bad key.
type preKeyRefusal struct {
	msg     string
	tooMany bool
}

// parsePreKeyUpload parses the prekeys of an upload (untrusted: the client's frame)
// and counts its one-time keys by kind, without verifying a signature. It refuses a
// key that does not parse, a key that repeats another of the frame (its kind and id,
// or its key), a second signed or last-resort KEM prekey (each replaces the one before,
// so a frame needs one at most), and more than maxOneTime one-time keys of a kind.
func parsePreKeyUpload(raws [][]byte, maxOneTime int) (parsed []ratchet.PublicPreKey, newOneTime map[ratchet.PreKeyKind]int, refused *preKeyRefusal) {
	type kindID struct {
		kind ratchet.PreKeyKind
		id   uint32
	}
	parsed = make([]ratchet.PublicPreKey, 0, len(raws))
	newOneTime = map[ratchet.PreKeyKind]int{}
	byID := make(map[kindID]int, len(raws))
	byKey := make(map[string]int, len(raws))
	replacing := map[ratchet.PreKeyKind]int{}
	refuse := func(i int, why string) *preKeyRefusal {
		return &preKeyRefusal{msg: "prekey " + strconv.Itoa(i) + " " + why}
	}
	for i, raw := range raws {
		pk, err := ratchet.ParsePublicPreKey(raw)
		if err != nil {
			return nil, nil, refuse(i, "does not parse: "+err.Error())
		}
		if j, seen := byID[kindID{pk.Kind, pk.ID}]; seen {
			return nil, nil, refuse(i, "repeats the id of prekey "+strconv.Itoa(j)+" ("+pk.Kind.String()+" "+strconv.FormatUint(uint64(pk.ID), 10)+"): send each prekey once")
		}
		if j, seen := byKey[string(pk.Key)]; seen {
			return nil, nil, refuse(i, "repeats the key of prekey "+strconv.Itoa(j)+": send each prekey once")
		}
		byID[kindID{pk.Kind, pk.ID}], byKey[string(pk.Key)] = i, i
		switch pk.Kind {
		case ratchet.SignedPreKey, ratchet.KEMLastResort:
			if j, seen := replacing[pk.Kind]; seen {
				return nil, nil, refuse(i, "is a second "+pk.Kind.String()+" after prekey "+strconv.Itoa(j)+": the relay keeps one, so send one")
			}
			replacing[pk.Kind] = i
		default:
			newOneTime[pk.Kind]++
		}
		parsed = append(parsed, pk)
	}
	for kind, n := range newOneTime {
		if n > maxOneTime {
			return nil, nil, &preKeyRefusal{msg: strconv.Itoa(n) + " " + relay.PreKeyKindNames[kind] + " prekeys in one frame exceed " + strconv.Itoa(maxOneTime), tooMany: true}
		}
	}
	return parsed, newOneTime, nil
}

func (c *conn) onPreKeyStatus(f *relay.Frame) {
	ctx, cancel := c.opCtx()
	defer cancel()
	c.replyPreKeyStatus(ctx, f.ID)
}

func (c *conn) replyPreKeyStatus(ctx context.Context, reqID uint64) {
	counts, err := c.s.preKeyCounts(ctx, c.acct.cardID)
	if err != nil {
		c.internal(reqID, "counting prekeys", err)
		return
	}
	otk, err := c.s.dir.PreKeyIDs(ctx, c.acct.cardID, uint8(ratchet.OneTimePreKey))
	if err != nil {
		c.internal(reqID, "listing prekeys", err)
		return
	}
	kem, err := c.s.dir.PreKeyIDs(ctx, c.acct.cardID, uint8(ratchet.KEMOneTime))
	if err != nil {
		c.internal(reqID, "listing prekeys", err)
		return
	}
	if otk == nil {
		otk = []uint32{}
	}
	c.send(&relay.Frame{Type: relay.TypePreKeyStatus, ID: reqID, Counts: counts, OneTimeIDs: otk, KEMOneTimeIDs: kem})
}

func (c *conn) onFetchBundle(f *relay.Frame) {
	if !c.allowFetchBundle(f) {
		return
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	acc, ok := c.namedAccount(ctx, f)
	if !ok {
		return
	}
	if c.s.blocks.blocks(acc.name, c.acct.name) {
		c.replyError(f.ID, relay.CodeBlocked, acc.name+" does not accept messages from you", "")
		return
	}
	b, code, err := c.s.bundle(ctx, acc)
	if code != "" {
		c.replyError(f.ID, code, f.Name+" has not published the prekeys a session needs yet; ask them to come online", "")
		return
	}
	if err != nil {
		c.internal(f.ID, "building the bundle", err)
		return
	}
	c.send(&relay.Frame{Type: relay.TypeBundle, ID: f.ID, Bundle: b})
}

// bundle assembles a prekey bundle, taking one-time keys atomically (each handed out
// once), and tells the owner when its one-time keys run low.
func (s *Server) bundle(ctx context.Context, acc *account) ([]byte, string, error) {
	parse := func(sp storage.StoredPreKey) (ratchet.PublicPreKey, error) { return ratchet.ParsePublicPreKey(sp.Data) }
	spk, err := s.dir.LatestPreKey(ctx, acc.cardID, uint8(ratchet.SignedPreKey))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, relay.CodeNoPreKeys, nil
	}
	if err != nil {
		return nil, "", err
	}
	b := &ratchet.Bundle{Card: acc.card}
	if b.SignedPreKey, err = parse(spk); err != nil {
		return nil, "", err
	}
	oneTime := s.oneTimeKeysFor(acc.name)
	kem, err := storage.StoredPreKey{}, storage.ErrNotFound
	if oneTime {
		kem, err = s.dir.TakePreKey(ctx, acc.cardID, uint8(ratchet.KEMOneTime))
	}
	if errors.Is(err, storage.ErrNotFound) {
		kem, err = s.dir.LatestPreKey(ctx, acc.cardID, uint8(ratchet.KEMLastResort))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, relay.CodeNoPreKeys, nil
		}
	}
	if err != nil {
		return nil, "", err
	}
	if b.KEMPreKey, err = parse(kem); err != nil {
		return nil, "", err
	}
	otk, err := storage.StoredPreKey{}, storage.ErrNotFound
	if oneTime {
		otk, err = s.dir.TakePreKey(ctx, acc.cardID, uint8(ratchet.OneTimePreKey))
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, "", err
	default:
		p, err := parse(otk)
		if err != nil {
			return nil, "", err
		}
		b.OneTimePreKey = &p
	}
	if counts, err := s.preKeyCounts(ctx, acc.cardID); oneTime && err == nil && counts["one_time"] < s.limits.LowPreKeyThreshold {
		s.lowPreKeysNotice(acc, counts)
	}
	raw, err := b.MarshalBinary()
	return raw, "", err
}

// cardTakenText answers a replace_card or recover whose card the store refused
// (storage.ErrExists): another name's, or a card replaced before.
const cardTakenText = "that card is registered already, or was replaced: a replaced card never becomes current again"

func (c *conn) onReplaceCard(f *relay.Frame) {
	card, ok := c.parseCard(f)
	if !ok {
		return
	}
	if card.Identity != c.acct.name {
		c.replyError(f.ID, relay.CodeForbidden, "you are logged in as "+strconv.Quote(c.acct.name)+" and can only replace that name's card", "")
		return
	}
	if card.ID() == c.acct.cardID {
		c.send(&relay.Frame{Type: relay.TypeCard, ID: f.ID, Card: c.acct.export})
		return
	}
	if err := card.SignAsRelay(c.s.priv); err != nil {
		c.internal(f.ID, "signing the card", err)
		return
	}
	export := card.Export()
	ctx, cancel := c.opCtx()
	defer cancel()
	// Only from the card this connection logged in with: a connection whose card was
	// replaced elsewhere (the owner recovering the name from a thief) replaces nothing.
	err := c.s.dir.ReplaceCard(ctx, c.acct.name, c.acct.cardID, storage.Account{Name: c.acct.name, CardID: card.ID(), Card: []byte(export), CreatedAt: c.s.now().UTC()})
	if errors.Is(err, storage.ErrNotFound) {
		c.replyError(f.ID, relay.CodeCardReplaced, "the card this connection logged in with is no longer the name's", "")
		return
	}
	if errors.Is(err, storage.ErrExists) {
		c.replyError(f.ID, relay.CodeBadCard, cardTakenText, "")
		return
	}
	if err != nil {
		c.internal(f.ID, "replacing the card", err)
		return
	}
	acc := &account{name: c.acct.name, cardID: card.ID(), card: card, export: export}
	c.s.accounts.Store(acc.name, acc)
	c.acct = acc
	c.cardID.Store(&acc.cardID)
	c.s.log.Info("replaced card", "conn", c.id, "name", acc.name)
	c.send(&relay.Frame{Type: relay.TypeCard, ID: f.ID, Card: export})
	// Connections still logged in with the old card (another device, or whoever holds
	// the key being replaced) must stop receiving and acknowledging the name's messages.
	c.s.hub.Notice(acc.name, Notice{CardReplaced: acc.cardID})
}

// onLogoutAll closes every other connection logged in as this connection's name: they
// get logged_out and a close frame. The answer comes after the notice is published.
func (c *conn) onLogoutAll(f *relay.Frame) {
	c.s.hub.Notice(c.acct.name, Notice{LogoutAllExcept: c.connKey()})
	c.s.log.Info("logout_all", "conn", c.id, "name", c.acct.name)
	c.send(&relay.Frame{Type: relay.TypeOK, ID: f.ID})
}

// connKey names this connection across relay nodes: its challenge is random and
// fresh per connection.
func (c *conn) connKey() string { return string(c.challenge[:]) }
