//go:build !linux

package uring

// Ring is io_uring's ring; on this system it cannot be made.
type Ring struct{}

// New reports ErrUnsupported: io_uring is Linux's.
func New(entries, cqEntries, flags uint32) (*Ring, error) { return nil, ErrUnsupported }

// Close does nothing.
func (r *Ring) Close() error { return nil }
