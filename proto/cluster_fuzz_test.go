package proto

import "testing"

func FuzzClusterClaim(f *testing.F) { fuzzMessage(f, func() message { return new(ClusterClaim) }) }
func FuzzClusterIntroAsk(f *testing.F) {
	fuzzMessage(f, func() message { return new(ClusterIntroAsk) })
}
func FuzzClusterIntroAnswer(f *testing.F) {
	fuzzMessage(f, func() message { return new(ClusterIntroAnswer) })
}
func FuzzClusterRelayBind(f *testing.F) {
	fuzzMessage(f, func() message { return new(ClusterRelayBind) })
}
func FuzzClusterRelayBound(f *testing.F) {
	fuzzMessage(f, func() message { return new(ClusterRelayBound) })
}
func FuzzClusterRelayData(f *testing.F) {
	for _, c := range clusterRelayDataVectorCases {
		f.Add(c.Msg.Append(nil))
	}
	fuzzMessage(f, func() message { return new(ClusterRelayData) })
}

func FuzzClusterRoomJoin(f *testing.F) {
	fuzzMessage(f, func() message { return new(ClusterRoomJoin) })
}
func FuzzClusterRoomLeave(f *testing.F) {
	fuzzMessage(f, func() message { return new(ClusterRoomLeave) })
}
func FuzzClusterRoomState(f *testing.F) {
	fuzzMessage(f, func() message { return new(ClusterRoomState) })
}
func FuzzClusterRoomClaim(f *testing.F) {
	fuzzMessage(f, func() message { return new(ClusterRoomClaim) })
}
