package server

import "context"

// SweepAccounts runs one account-expiry sweep now and returns how many accounts went.
func (s *Server) SweepAccounts(ctx context.Context) int { return s.sweepAccounts(ctx) }

// SetTestHookLoggedIn makes f run on each connection's reader once its login is
// answered.
func (s *Server) SetTestHookLoggedIn(f func()) { s.testHookLoggedIn.Store(&f) }

// ParkedBelowTLS is how many open TLS connections park their read loops on the
// socket, below TLS (ParkingListener).
func (s *Server) ParkedBelowTLS() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.park != nil && c.waiter != nil {
			n++
		}
	}
	return n
}
