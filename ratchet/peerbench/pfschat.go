package peerbench

import "errors"

// errPending marks a workload whose implementation has not landed yet.
var errPending = errors.New("pfschat ratchet not merged yet")

// PfschatPeer is pfschat's own ratchet package (PQXDH + Double Ratchet).
func PfschatPeer() Peer {
	na := func() (Step, error) { return nil, errPending }
	return Peer{
		Name:      "pfschat",
		SameChain: func(int) (Step, error) { return na() },
		PingPong:  func(int) (Step, error) { return na() },
		Handshake: na,
	}
}
