//go:build !linux

package driver

// holdFds: no holding reader here (io_uring is Linux's).
type holdFds struct{}

// prepareHold: a server socket here is read as without ServerConfig.ReadHold.
func (s *socket) prepareHold() bool { return false }

func (s *socket) wakeHold()  {}
func (s *socket) closeHold() {}

// readHeld is not reached (prepareHold refused); it reports the fallback.
func (l *loop) readHeld(s *socket) bool {
	l.stats.holdFallbacks.Add(1)
	return false
}
