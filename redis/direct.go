package redis

import (
	"context"
	"errors"

	"github.com/redis/rueidis"
)

// ErrNotDelivered: the owning instance is registered but nobody listens on
// its channel (it is restarting its subscription connection); retry later.
var ErrNotDelivered = errors.New("redis: owning instance not listening")

// SendToConn delivers data (a JSON value) to one connection on whichever
// instance holds it, through that instance's own channel; the owner's
// DirectHandler gets it. ErrNotFound when no live instance holds connID.
func (r *Registry) SendToConn(ctx context.Context, connID string, data []byte) error {
	info, err := r.Lookup(ctx, connID)
	if err != nil {
		return err
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	n, err := r.b.client.Do(ctx, r.publishCmd(info.Instance, []string{connID}, data)).AsInt64()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotDelivered
	}
	return nil
}

// SendToUser delivers data to every live connection of user: one publication
// per owning instance, naming its connections. It returns how many
// connections were addressed (ErrNotFound when none).
func (r *Registry) SendToUser(ctx context.Context, user string, data []byte) (int, error) {
	conns, err := r.UserConns(ctx, user)
	if err != nil {
		return 0, err
	}
	if len(conns) == 0 {
		return 0, ErrNotFound
	}
	byInst := make(map[string][]string)
	var order []string
	for _, c := range conns {
		if byInst[c.Instance] == nil {
			order = append(order, c.Instance)
		}
		byInst[c.Instance] = append(byInst[c.Instance], c.ID)
	}
	cmds := make(rueidis.Commands, len(order))
	for i, in := range order {
		cmds[i] = r.publishCmd(in, byInst[in], data)
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	sent := 0
	var first error
	for i, res := range r.b.client.DoMulti(ctx, cmds...) {
		n, err := res.AsInt64()
		switch {
		case err != nil:
			first = errors.Join(first, err)
		case n == 0:
			first = errors.Join(first, ErrNotDelivered)
		default:
			sent += len(byInst[order[i]])
		}
	}
	return sent, first
}

func (r *Registry) publishCmd(inst string, conns []string, data []byte) rueidis.Completed {
	c := r.b.client
	ch := instPrefix + inst
	msg := string(appendDirect(nil, conns, data))
	if r.b.cluster {
		return c.B().Spublish().Channel(ch).Message(msg).Build()
	}
	return c.B().Publish().Channel(ch).Message(msg).Build()
}
