// Package ui is pfschat's Bubble Tea interface: onboarding, unlock, the contact list and
// conversation, verification and help. It talks to chat/ only through the Backend
// interface and tea.Cmds, never blocking Update.
package ui
