package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/wshub/wshub/loadtest"
)

// The parent and its workers talk in JSON lines: workers write events on
// stdout, the parent answers barriers with "go PHASE" lines on their
// stdin. Worker stderr goes straight to the parent's.
type workerEvent struct {
	Type     string             `json:"type"` // barrier, progress, result, error
	Phase    string             `json:"phase,omitempty"`
	Progress *loadtest.Progress `json:"progress,omitempty"`
	Raw      *loadtest.Raw      `json:"raw,omitempty"`
	Error    string             `json:"error,omitempty"`
	worker   int
}

// runWorker runs this process's share and reports to the parent.
func runWorker(ctx context.Context, o *options, in io.Reader, out io.Writer) int {
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(ev workerEvent) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(ev)
	}
	gos := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			if phase, ok := strings.CutPrefix(sc.Text(), "go "); ok {
				gos <- phase
			}
		}
		close(gos) // the parent went away
	}()
	coord := &workerCoord{send: send, gos: gos}
	raw, err := loadtest.Run(ctx, o.cfg, coord)
	if err != nil {
		send(workerEvent{Type: "error", Error: err.Error()})
		return 3
	}
	send(workerEvent{Type: "result", Raw: raw})
	return 0
}

// workerCoord is a worker's side of the barriers.
type workerCoord struct {
	send func(workerEvent)
	gos  chan string
}

func (w *workerCoord) Barrier(ctx context.Context, phase string) error {
	w.send(workerEvent{Type: "barrier", Phase: phase})
	select {
	case got, ok := <-w.gos:
		if !ok {
			return fmt.Errorf("parent closed the control pipe")
		}
		if got != phase {
			return fmt.Errorf("parent released phase %q while waiting for %q", got, phase)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *workerCoord) Progress(p loadtest.Progress) {
	w.send(workerEvent{Type: "progress", Progress: &p})
}

// runParent re-executes this binary as o.procs workers, releases their
// barriers together (sampling the gateway at each), shows their merged
// progress and merges their results.
func runParent(ctx context.Context, o *options, args []string, disp *display, sampler *serverSampler, stderr io.Writer) (*loadtest.Raw, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan workerEvent, 64)
	stdins := make([]io.WriteCloser, o.procs)
	cmds := make([]*exec.Cmd, o.procs)
	var readers sync.WaitGroup
	for i := 0; i < o.procs; i++ {
		wargs := append(append([]string{}, args...),
			"--worker-index="+strconv.Itoa(i), "--worker-count="+strconv.Itoa(o.procs),
			"--run-id="+o.cfg.RunID, "--quiet")
		cmd := exec.CommandContext(ctx, exe, wargs...)
		cmd.Stderr = stderr
		if stdins[i], err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting worker %d: %v", i, err)
		}
		cmds[i] = cmd
		readers.Add(1)
		go func(i int) {
			defer readers.Done()
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 256<<20) // results carry histograms and per-channel sums
			for sc.Scan() {
				var ev workerEvent
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					ev = workerEvent{Type: "error", Error: "unreadable worker output: " + err.Error()}
				}
				ev.worker = i
				events <- ev
			}
			events <- workerEvent{Type: "exit", worker: i}
		}(i)
	}
	ok := false
	defer func() {
		for _, w := range stdins {
			w.Close() // a worker waiting at a barrier sees EOF and gives up
		}
		if !ok {
			cancel() // and one that is busy is killed
		}
		go func() {
			for range events { // keep readers unblocked until the pipes end
			}
		}()
		readers.Wait()
		close(events)
		for _, c := range cmds {
			_ = c.Wait()
		}
	}()

	merged := &loadtest.Raw{}
	progress := make([]loadtest.Progress, o.procs)
	at := map[string]int{}
	done := make([]bool, o.procs)
	results := 0
	for results < o.procs {
		var ev workerEvent
		select {
		case ev = <-events:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		switch ev.Type {
		case "barrier":
			if at[ev.Phase]++; at[ev.Phase] == o.procs {
				sampler.sample(ev.Phase)
				for _, w := range stdins {
					fmt.Fprintf(w, "go %s\n", ev.Phase)
				}
			}
		case "progress":
			progress[ev.worker] = *ev.Progress
			disp.update(progress)
		case "result":
			merged.Merge(ev.Raw)
			done[ev.worker] = true
			results++
		case "error":
			return nil, fmt.Errorf("worker %d: %s", ev.worker, ev.Error)
		case "exit":
			if !done[ev.worker] {
				return nil, fmt.Errorf("worker %d exited without a result", ev.worker)
			}
		}
	}
	ok = true
	return merged, nil
}
