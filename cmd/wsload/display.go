package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wshub/wshub/loadtest"
)

// display shows live progress: one rewritten line on a terminal, plain
// lines otherwise.
type display struct {
	w        io.Writer
	tty      bool
	quiet    bool
	start    time.Time
	mu       sync.Mutex
	lastAt   time.Time
	lastRecv int64
	lastPub  int64
	drawn    bool
}

func newDisplay(w io.Writer, quiet bool) *display {
	d := &display{w: w, quiet: quiet, start: time.Now(), lastAt: time.Now()}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		d.tty = err == nil
	}
	return d
}

// update renders the sum of the workers' latest snapshots, at most about
// once a second.
func (d *display) update(ps []loadtest.Progress) {
	if d.quiet {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	dt := now.Sub(d.lastAt).Seconds()
	if dt < 0.9 {
		return
	}
	var s loadtest.Progress
	iv := loadtest.NewHistogram()
	for _, p := range ps {
		if s.Phase == "" {
			s.Phase = p.Phase
		}
		s.Counts.Add(p.Counts)
		s.Errors += p.Errors
		s.Refused += p.Refused
		iv.Merge(p.Interval.Histogram())
	}
	line := fmt.Sprintf("[%5.1fs] %-7s open %d  ready %d  failed %d  pub %.0f/s  recv %.0f/s  p99 %s  errors %d",
		now.Sub(d.start).Seconds(), s.Phase, s.Open, s.Ready, s.Failed,
		float64(s.Published-d.lastPub)/dt, float64(s.Received-d.lastRecv)/dt, fmtUs(iv.Quantile(0.99)), s.Errors)
	if s.Refused > 0 {
		line += fmt.Sprintf(" (%d upgrades refused)", s.Refused)
	}
	d.lastAt, d.lastRecv, d.lastPub = now, s.Received, s.Published
	if d.tty {
		fmt.Fprintf(d.w, "\r\033[K%s", line)
		d.drawn = true
	} else {
		fmt.Fprintln(d.w, line)
	}
}

// finish ends the live line before the summary.
func (d *display) finish() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.drawn {
		fmt.Fprintln(d.w)
		d.drawn = false
	}
	d.quiet = true
}

// fmtUs prints microseconds with a readable unit.
func fmtUs(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 1000000:
		return fmt.Sprintf("%.2fms", float64(us)/1000)
	}
	return fmt.Sprintf("%.2fs", float64(us)/1e6)
}

// fmtBytes prints a byte count with a binary unit.
func fmtBytes(b float64) string {
	switch {
	case b < 1024 && b > -1024:
		return fmt.Sprintf("%.0f B", b)
	case b < 1<<20 && b > -(1<<20):
		return fmt.Sprintf("%.1f KiB", b/1024)
	}
	return fmt.Sprintf("%.1f MiB", b/(1<<20))
}

// serverSampler reads the gateways' /proc figures at each phase, summed
// over every given process.
type serverSampler struct {
	pids    []int
	w       io.Writer
	mu      sync.Mutex
	samples map[string]loadtest.ProcSample
	warned  bool
}

func newServerSampler(pids []int, w io.Writer) *serverSampler {
	return &serverSampler{pids: pids, w: w, samples: map[string]loadtest.ProcSample{}}
}

func (s *serverSampler) sample(phase string) {
	if len(s.pids) == 0 {
		return
	}
	var sum loadtest.ProcSample
	for _, pid := range s.pids {
		v, err := loadtest.ReadProc(pid)
		if err != nil {
			s.mu.Lock()
			if !s.warned {
				fmt.Fprintf(s.w, "wsload: --server-pid %d: %v\n", pid, err)
				s.warned = true
			}
			s.mu.Unlock()
			return
		}
		sum.At = v.At
		sum.RSS += v.RSS
		sum.HWM += v.HWM
		sum.CPUSec += v.CPUSec
		sum.Written += v.Written
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples[phase] = sum
}

// at returns the sample taken at phase, if any.
func (s *serverSampler) at(phase string) (loadtest.ProcSample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.samples[phase]
	return v, ok
}

// phases returns the samples before setup, at ready and at done.
func (s *serverSampler) phases() (before, ready, done loadtest.ProcSample, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ok1, ok2, ok3 bool
	before, ok1 = s.samples["before"]
	ready, ok2 = s.samples[loadtest.PhaseReady]
	done, ok3 = s.samples[loadtest.PhaseDone]
	return before, ready, done, ok1 && ok2 && ok3
}
