//go:build cgo

package main

import (
	"sync"
)

// The handle table: C holds int64 handles, never Go pointers (cgo's rules forbid
// C keeping Go pointers). Handles count up from 1 and are never reused, so a
// handle used after its object was freed finds nothing instead of another
// object.
var handles = struct {
	sync.RWMutex
	next int64
	objs map[int64]any
}{objs: map[int64]any{}}

// newHandle stores obj and returns its handle.
func newHandle(obj any) int64 {
	handles.Lock()
	defer handles.Unlock()
	handles.next++
	handles.objs[handles.next] = obj
	return handles.next
}

// freeHandle forgets h (a no-op for an unknown h).
func freeHandle(h int64) {
	handles.Lock()
	defer handles.Unlock()
	delete(handles.objs, h)
}

// lookup returns h's object when it is a T.
func lookup[T any](h int64, kind string) (T, error) {
	handles.RLock()
	obj, ok := handles.objs[h]
	handles.RUnlock()
	t, isT := obj.(T)
	if !ok || !isT {
		var zero T
		return zero, errCode(codeBadHandle, "natpass: %d is not a live %s handle", h, kind)
	}
	return t, nil
}
