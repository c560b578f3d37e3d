// Package assets embeds pfschat's non-code resources: the logo, themes, help text and
// the demo script.
package assets
