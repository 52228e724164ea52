package presence

import "encoding/json"

// Member is one connection subscribed to a presence channel.
type Member struct {
	Conn string          // connection id, "<instance>.<n>"
	User string          // the token's sub; "" for an anonymous connection
	Info json.RawMessage // the token's info claim (a JSON object), nil when none
}

// Stats counts a presence channel's members.
type Stats struct {
	Conns int // connections
	Users int // distinct non-empty users
}
