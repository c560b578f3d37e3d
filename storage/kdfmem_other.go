//go:build !linux

package storage

// prepareKDFMemory does nothing off Linux (see kdfmem_linux.go).
func prepareKDFMemory(uint32) {}
