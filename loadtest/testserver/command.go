package testserver

import (
	"encoding/json"

	"github.com/gorilla/websocket"
)

// command is a client command as the test servers read it.
type command struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	ID      int64           `json:"id"`
	Data    json.RawMessage `json:"data"`
	Since   *int64          `json:"since"`
	Epoch   string          `json:"epoch"`
}

// readCommand reads the next command; false when the connection ended or
// sent something that is not one.
func readCommand(c *websocket.Conn) (command, bool) {
	var in command
	_, msg, err := c.ReadMessage()
	if err != nil || json.Unmarshal(msg, &in) != nil {
		return in, false
	}
	return in, true
}
