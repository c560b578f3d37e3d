package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"pfschat/chat"
	"pfschat/chat/daemon"
	"pfschat/chat/profile"
	"pfschat/ui"
)

// ownedElsewhere says, when another process owns the profile in home and answers on
// its socket, who it is and what to do; "" when nobody does. (Attaching the UI to a
// running daemon is a later step: for now the UI exits.)
func ownedElsewhere(ctx context.Context, home string) string {
	sock, err := daemon.SocketPath(home)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, ownerTimeout)
	defer cancel()
	cl, err := daemon.Dial(ctx, sock)
	if err != nil {
		return ""
	}
	defer cl.Close()
	var v daemon.VersionResult
	if err := cl.Call(ctx, "version", nil, &v); err != nil {
		return ""
	}
	return fmt.Sprintf("pfschat: profile %s is open in pfschat %s (serving %s on %s); "+
		"stop it first, or talk to it with the headless commands (pfschat send, recv, ...)", home, v.Owner, v.Me, sock)
}

// uiOwnerProfile is the UI's profile: once unlocked (or created), the UI is the
// profile's owner and serves the API on its socket while it runs, so that the headless
// commands and scripts go through it.
type uiOwnerProfile struct {
	ui.Profile
	home   string
	logger *slog.Logger
}

func (p uiOwnerProfile) Open(ctx context.Context, passphrase []byte) (ui.Backend, error) {
	b, err := p.Profile.Open(ctx, passphrase)
	return p.serve(b, err)
}

func (p uiOwnerProfile) Create(ctx context.Context, name string, passphrase []byte, relayURL string) (ui.Backend, error) {
	b, err := p.Profile.Create(ctx, name, passphrase, relayURL)
	return p.serve(b, err)
}

// ProbeRelay, NameAvailable, CreateWith, RecoverWith and ProfileName pass onboarding's
// and the unlock screen's questions to the profile underneath (ui.Onboarder,
// ui.Recoverer, ui.ProfileNamer).
func (p uiOwnerProfile) ProbeRelay(ctx context.Context, relayURL string) (ui.RelayInfo, error) {
	if ob, ok := p.Profile.(ui.Onboarder); ok {
		return ob.ProbeRelay(ctx, relayURL)
	}
	return ui.RelayInfo{}, nil
}

func (p uiOwnerProfile) NameAvailable(ctx context.Context, relayURL, name string) (bool, error) {
	if ob, ok := p.Profile.(ui.Onboarder); ok {
		return ob.NameAvailable(ctx, relayURL, name)
	}
	return false, errors.New("this profile cannot ask the relay before it exists")
}

func (p uiOwnerProfile) CreateWith(ctx context.Context, req ui.CreateRequest) (ui.Backend, error) {
	if ob, ok := p.Profile.(ui.Onboarder); ok {
		return p.serve(ob.CreateWith(ctx, req))
	}
	return p.Create(ctx, req.Name, req.Passphrase, req.RelayURL)
}

// RecoverWith passes onboarding's recovery (ctrl+r on a taken name) to the profile
// underneath (ui.Recoverer), as CreateWith does its creation: without it the UI never
// offered ctrl+r, which the README promises.
func (p uiOwnerProfile) RecoverWith(ctx context.Context, req ui.RecoverRequest) (ui.Backend, error) {
	if r, ok := p.Profile.(ui.Recoverer); ok {
		return p.serve(r.RecoverWith(ctx, req))
	}
	return nil, errors.New("this profile cannot recover a name")
}

func (p uiOwnerProfile) ProfileName() (string, string) {
	if n, ok := p.Profile.(ui.ProfileNamer); ok {
		return n.ProfileName()
	}
	return "", p.home
}

func (p uiOwnerProfile) serve(b ui.Backend, err error) (ui.Backend, error) {
	if err != nil {
		return nil, err
	}
	c, ok := b.(*chat.Controller)
	if !ok {
		return b, nil
	}
	sock, err := daemon.SocketPath(p.home)
	if err == nil {
		var o *owner
		if o, err = serveOwner(c, sock, profile.OwnerUI, true, "", p.logger); err == nil {
			p.logger.Info("serving the profile's API", "socket", sock)
			return &uiBackend{Controller: c, o: o, sub: o.first}, nil
		}
	}
	// The UI works without its socket; other commands then find the profile locked.
	p.logger.Error("cannot serve the profile's socket", "err", err)
	return c, nil
}

// uiBackend is the controller the UI runs on, with its events taken from the owner's
// hub (the API's subscribers read the same stream).
type uiBackend struct {
	*chat.Controller
	o   *owner
	sub *daemon.Sub
}

func (b *uiBackend) Events() <-chan chat.Event { return b.sub.C() }

func (b *uiBackend) Close() error {
	b.o.close()
	b.sub.Close()
	return b.Controller.Close()
}
