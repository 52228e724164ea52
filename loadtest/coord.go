package loadtest

import "context"

// Local is the Coordinator of a run held in one process: its barriers
// return at once after calling OnBarrier (where the caller samples the
// gateway), and progress goes to OnProgress.
type Local struct {
	OnBarrier  func(phase string)
	OnProgress func(Progress)
}

// Barrier implements Coordinator.
func (l *Local) Barrier(ctx context.Context, phase string) error {
	if l.OnBarrier != nil {
		l.OnBarrier(phase)
	}
	return ctx.Err()
}

// Progress implements Coordinator.
func (l *Local) Progress(p Progress) {
	if l.OnProgress != nil {
		l.OnProgress(p)
	}
}
