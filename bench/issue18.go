package main

import (
	"fmt"
	"time"
)

// runIssue18 runs the measurements the flags ask for, in a fixed order.
func runIssue18(relay bool, rc relayConfig, ceiling bool, ceilingDur time.Duration, bulkBytes, loadN int, loadIdle, loadTimeout time.Duration, loadMaxPeers int) error {
	if relay {
		rep, err := runRelayComparison(rc)
		if err != nil {
			return err
		}
		printRelayReport(rep, rc)
		fmt.Println()
	}
	if ceiling {
		if err := runCeiling(ceilingDur, bulkBytes); err != nil {
			return err
		}
		fmt.Println()
	}
	if loadN > 0 {
		if err := runLoad(loadN, loadIdle, loadTimeout, loadMaxPeers); err != nil {
			return err
		}
	}
	return nil
}
