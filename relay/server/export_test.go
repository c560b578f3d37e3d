package server

import "context"

// SweepAccounts runs one account-expiry sweep now and returns how many accounts went.
func (s *Server) SweepAccounts(ctx context.Context) int { return s.sweepAccounts(ctx) }

// SetTestHookLoggedIn makes f run on each connection's reader once its login is
// answered. Set it while no connection logs in.
func (s *Server) SetTestHookLoggedIn(f func()) { s.testHookLoggedIn = f }
