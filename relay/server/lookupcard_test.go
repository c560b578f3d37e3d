package server_test

import (
	"strings"
	"testing"

	"pfschat/relay"
	"pfschat/relay/client"
	"pfschat/relay/relaytest"
	"pfschat/relay/server"
)

// lookup_card returns the current card with an ID, logged in or not; an unknown or
// replaced card is not_found, a malformed ID bad_field.
func TestLookupCardByID(t *testing.T) {
	r := relaytest.Start(t)
	ctx := testCtx(t)
	alice := newUser(t, r, "alice")
	bob := newUser(t, r, "bob")

	got, err := bob.c.LookupCardByID(ctx, alice.card.ID())
	if err != nil || got.ID() != alice.card.ID() || got.Identity != "alice" {
		t.Fatalf("lookup by ID: %v", err)
	}
	anon := client.New(client.Config{URL: r.URL})
	defer anon.Close()
	if err := anon.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := anon.LookupCardByID(ctx, bob.card.ID()); err != nil || got.ID() != bob.card.ID() {
		t.Fatalf("anonymous lookup by ID: %v", err)
	}
	_, err = anon.LookupCardByID(ctx, strings.Repeat("0", 64))
	wantCode(t, err, relay.CodeNotFound)
	_, err = anon.LookupCardByID(ctx, strings.Repeat("A", 64))
	wantCode(t, err, relay.CodeBadField)

	old := alice.card.ID()
	_, card2 := newIdentity(t, "alice")
	signed, err := alice.c.ReplaceCard(ctx, card2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bob.c.LookupCardByID(ctx, old)
	wantCode(t, err, relay.CodeNotFound)
	if got, err := bob.c.LookupCardByID(ctx, signed.ID()); err != nil || got.ID() != signed.ID() {
		t.Fatalf("the new card by ID: %v", err)
	}
}

// The hello announces the registration policy, so onboarding can ask for an invite
// code before it registers.
func TestHelloAnnouncesRegistration(t *testing.T) {
	for _, policy := range []string{server.RegistrationOpen, server.RegistrationInvite, server.RegistrationClosed} {
		r := relaytest.StartWith(t, relaytest.Options{Registration: policy})
		anon := client.New(client.Config{URL: r.URL})
		if err := anon.Connect(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if got := anon.Registration(); got != policy {
			t.Errorf("policy %q announced as %q", policy, got)
		}
		anon.Close()
	}
}
