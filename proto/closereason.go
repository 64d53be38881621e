package proto

import "fmt"

// CloseReason says why a reliable connection ended. rudp reports it in its last event
// (rudp.EventClosed) and node passes it on, so it lives where both can name it. Local
// is true when this end decided (Close, idle timeout, a protocol violation by the
// peer); Code and Text are the application's for Close, or one of rudp's own close
// codes (rudp.CodeIdleTimeout and its neighbours, PROTOCOL.md §7.8) otherwise. Code and
// Text are what an RUDPClose frame carries.
type CloseReason struct {
	Code  uint16
	Local bool
	Text  string
}

func (r CloseReason) String() string {
	who := "peer"
	if r.Local {
		who = "local"
	}
	return fmt.Sprintf("%s close, code %#x: %q", who, r.Code, r.Text)
}
