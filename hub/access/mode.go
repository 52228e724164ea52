package access

import "fmt"

// Mode is who may subscribe to, or publish from a client on, a namespace's
// channels.
type Mode uint8

// The modes. Subscribers applies to publishing only.
const (
	Anyone        Mode = iota // every connection, anonymous ones included
	Authenticated             // connections with a valid token
	Token                     // connections whose token's channels claim lists the channel
	Subscribers               // connections subscribed to the channel (publish only)
	Nobody                    // no client: the backend publishes through the admin API
)

var modeNames = [...]string{Anyone: "anyone", Authenticated: "authenticated", Token: "token", Subscribers: "subscribers", Nobody: "nobody"}

// String is the mode's name in the configuration file.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// SubscribeModes and PublishModes are the names each option accepts, in the
// configuration's words.
var (
	SubscribeModes = []string{"anyone", "authenticated", "token", "nobody"}
	PublishModes   = []string{"anyone", "subscribers", "authenticated", "token", "nobody"}
)

// ParseSubscribeMode reads a namespace's subscribe option.
func ParseSubscribeMode(s string) (Mode, error) { return parseMode(s, SubscribeModes) }

// ParsePublishMode reads a namespace's publish option.
func ParsePublishMode(s string) (Mode, error) { return parseMode(s, PublishModes) }

func parseMode(s string, allowed []string) (Mode, error) {
	for _, a := range allowed {
		if a == s {
			for m, name := range modeNames {
				if name == s {
					return Mode(m), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("%q is not one of %v", s, allowed)
}
