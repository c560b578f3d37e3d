package ui

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// onboardingView is the onboarding screen as plain text with its line breaks and
// runs of spaces folded, so wrapped sentences read whole.
func onboardingView(o *onboarding) string {
	return strings.Join(strings.Fields(ansi.Strip(o.View())), " ")
}

// TestOnboardingNameFeedback drives onboarding step by step (no program: every result
// is fed back at once): an invalid character in the name is explained under the field
// as it is typed, in the words Enter uses, and said once after Enter; a taken name is
// said once, not once under the field and again after Enter; and after an error the
// key hints stay (they vanished, and with them how to go back). Tester's findings.
func TestOnboardingNameFeedback(t *testing.T) {
	c := &common{ctx: t.Context(), styles: NewStyles(true), keys: DefaultKeyMap(), width: 100, height: 30,
		now: func() time.Time { return fixedNow }, loc: time.UTC, log: slog.New(slog.DiscardHandler)}
	o := newOnboarding(c, &fakeOnboarder{})
	update := func(msgs ...any) {
		t.Helper()
		for _, msg := range msgs {
			o.Update(msg)
		}
	}
	typeText := func(s string) {
		for _, r := range s {
			update(keyMsg(string(r)))
		}
	}
	check := func(step, what string, want int) {
		t.Helper()
		v := onboardingView(o)
		if n := strings.Count(v, what); n != want {
			t.Errorf("%s: %q is on screen %d times, want %d:\n%s", step, what, n, want, v)
		}
	}
	const hints = "esc back • ctrl+c quit"

	update(o.next()()) // the relay answers
	if o.step != stepName {
		t.Fatalf("at step %d after the relay answered, want the name", o.step)
	}
	typeText("al!")
	check("typed \"al!\"", nameRule, 1)
	update(keyMsg("enter"))
	check("\"al!\" and enter", nameRule, 1)
	check("\"al!\" and enter", hints, 1)
	for range 3 {
		update(keyMsg("backspace"))
	}
	check("the name emptied", nameRule, 0)

	typeText("bob")
	update(o.checkName(o.nameSeq)()) // typing paused: the relay says bob is taken
	check("bob checked", "is taken", 1)
	update(keyMsg("enter"))
	check("bob and enter", "is taken", 1)
	check("bob and enter", hints, 1)

	for range 3 {
		update(keyMsg("backspace"))
	}
	typeText("alice")
	update(o.checkName(o.nameSeq)())
	update(keyMsg("enter"))
	if o.step != stepInvite {
		t.Fatalf("at step %d after a free name, want the invite", o.step)
	}
	update(keyMsg("enter")) // no code: refused with an error
	check("the invite refused", "registers by invitation", 1)
	check("the invite refused", hints, 1)
}

// TestOnboardingTesterFindings: what a tester found in onboarding. The recovery code's
// explanation was a placeholder cut at the field's width (at 50, 80 and 140 columns):
// it is a wrapped line, whole. An error stayed under a field after the field was
// edited: it goes with the edit. The unreachable relay's error said the URL twice. The
// block's left edge jumped from 12 cells to 2 at 80 columns when the relay key's line
// appeared.
func TestOnboardingTesterFindings(t *testing.T) {
	newO := func(width int) *onboarding {
		c := &common{ctx: t.Context(), styles: NewStyles(true), keys: DefaultKeyMap(), width: width, height: 40,
			now: func() time.Time { return fixedNow }, loc: time.UTC, log: slog.New(slog.DiscardHandler)}
		return newOnboarding(c, &fakeOnboarder{})
	}
	margin := func(o *onboarding) int {
		for _, l := range strings.Split(ansi.Strip(o.View()), "\n") {
			if i := strings.Index(l, "Welcome."); i >= 0 {
				return i
			}
		}
		t.Fatal("no welcome line")
		return 0
	}

	o := newO(80)
	before := margin(o)
	o.Update(o.next()()) // the relay answers: its key's line appears
	if after := margin(o); after != before {
		t.Errorf("at 80 columns the form's left edge moved from %d to %d cells when the relay key appeared", before, after)
	}

	for _, w := range []int{50, 80, 140} {
		o := newO(w)
		o.Update(o.next()())
		o.inputs[stepName].SetValue("bob")
		o.recovering = true
		o.focus(stepCode)
		const hint = "the code you were shown when you made “bob”"
		if v := onboardingView(o); !strings.Contains(v, hint) {
			t.Errorf("at %d columns the recovery code's explanation is not whole:\n%s", w, ansi.Strip(o.View()))
		}
		o.Update(keyMsg("x"))
		o.Update(keyMsg("enter"))
		if o.err == "" {
			t.Fatal("a wrong recovery code was not refused")
		}
		o.Update(keyMsg("backspace"))
		if o.err != "" {
			t.Errorf("at %d columns the recovery code cleared, its error stays: %q", w, o.err)
		}
	}

	o = newO(100)
	o.Update(probedMsg{url: "ws://127.0.0.1:7878", err: errors.New("chat: offline: ws://127.0.0.1:7878/v2/ws: relay: dialing ws://127.0.0.1:7878/v2/ws: dial tcp 127.0.0.1:7878: connect: connection refused")})
	if n := strings.Count(o.err, "ws://127.0.0.1:7878/v2/ws"); n != 1 {
		t.Errorf("the unreachable relay's error says its URL %d times, want once: %q", n, o.err)
	}
	o.Update(keyMsg("end"))
	o.Update(keyMsg("backspace"))
	if o.err != "" || strings.Contains(onboardingView(o), "could not reach") {
		t.Errorf("the relay URL edited, its error stays: %q", o.err)
	}
}
