package ui

import (
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
