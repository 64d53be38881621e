package proto

// PathKind says which way a peer's traffic goes. node decides it and reports it in its
// path events; driver hands it to applications unchanged.
type PathKind uint8

const (
	PathNone   PathKind = iota // nothing works yet
	PathDirect                 // a confirmed direct path
	PathRelay                  // through the server
)

var pathKindNames = [...]string{"none", "direct", "relay"}

func (k PathKind) String() string {
	if int(k) < len(pathKindNames) {
		return pathKindNames[k]
	}
	return "invalid"
}
