package server

import "context"

// SweepAccounts runs one account-expiry sweep now and returns how many accounts went.
func (s *Server) SweepAccounts(ctx context.Context) int { return s.sweepAccounts(ctx) }
