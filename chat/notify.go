package chat

import (
	"context"
	"fmt"
)

// NotifySettings are the profile's desktop-notification settings (issue 13 point 10):
// On raises notifications for new messages (default on); Preview shows the message's
// text in them (default off: the sender only). Contacts are muted one by one
// (SetMuted).
type NotifySettings struct {
	On, Preview bool
}

func (s NotifySettings) String() string {
	switch {
	case !s.On:
		return "off"
	case s.Preview:
		return "on, with the message text"
	}
	return "on, sender only"
}

const metaNotify = "notify" // "off", "on", "preview"

// NotifySettings reads the notification settings (on, no preview, when never set).
func (c *Controller) NotifySettings(ctx context.Context) NotifySettings {
	v, err := c.store.Meta(ctx, metaNotify)
	if err != nil {
		return NotifySettings{On: true}
	}
	switch string(v) {
	case "off":
		return NotifySettings{}
	case "preview":
		return NotifySettings{On: true, Preview: true}
	}
	return NotifySettings{On: true}
}

// SetNotifySettings stores the notification settings.
func (c *Controller) SetNotifySettings(ctx context.Context, s NotifySettings) error {
	v := "on"
	switch {
	case !s.On:
		v = "off"
	case s.Preview:
		v = "preview"
	}
	if err := c.store.SetMeta(ctx, metaNotify, []byte(v)); err != nil {
		return fmt.Errorf("chat: saving the notification settings: %w", err)
	}
	return nil
}
