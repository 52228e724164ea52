package loadtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"
)

// runHTTP publishes with POST /api/publish on the admin address until the
// budget is spent or publishing stops. Requests are sequential so each
// channel's sequence reaches the gateway in order.
func (e *engine) runHTTP(ctx context.Context, pb *publisher, client *http.Client) {
	url := "http://" + e.cfg.PublishHTTP + "/api/publish"
	var body []byte
	for e.publishing.Load() && !pb.done() && ctx.Err() == nil {
		now := e.now()
		if pb.due(now) <= 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		ch := pb.nextChannel(e)
		if ch < 0 {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		seq := e.seq[ch] + 1
		e.seq[ch] = seq
		pb.sent++
		e.httpCtr.published.Add(1)
		body = appendHTTPPublish(body[:0], e.chanNames[ch], seq, time.Now().UnixNano(), e.cfg.Size, e.pad)
		ok := e.postOnce(ctx, client, url, body)
		pb.acked++
		if ok {
			e.httpCtr.acked.Add(1)
		} else {
			e.httpCtr.errs[errPublish].Add(1)
			e.rejected[ch].Add(1)
		}
	}
}

func (e *engine) postOnce(ctx context.Context, client *http.Client, url string, body []byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
