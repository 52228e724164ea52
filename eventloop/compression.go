package eventloop

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wshub/wshub/wsproto"
)

// permessage-deflate on the way out (RFC 7692). A frame is compressed at
// most once, by the first loop that writes it to a connection that
// negotiated the extension (wsproto.Frame.Deflated), and its compressed
// bytes then serve every such connection on every loop; the others get the
// plain bytes of the same frame. The choice is made as a frame is written
// (writeBatch), so a frame that no compressed connection gets is never
// compressed, and no connection holds compression state of its own.

// DefaultCompressionMinSize is the payload (the whole message, envelope
// included) under which messages go out plain even to compressed
// connections. With no context takeover each message starts from an empty
// window and carries its own Huffman tables: JSON messages of 130-150 bytes
// come out of deflate no smaller, 230-byte ones about 30% smaller, 1 KB
// ones 60-65% smaller; under 256 bytes the saving is not worth the
// client's inflate.
const DefaultCompressionMinSize = 256

// loopDeflate is a loop's share of outbound compression. Loop goroutine
// only, apart from the counters.
type loopDeflate struct {
	// d is made the first time the loop writes to a compressed connection
	// (its flate.Writer the first time it compresses); atomic for scrapes.
	d atomic.Pointer[wsproto.Deflater]

	// Frames written compressed, and the bytes that saved on the wire
	// against their plain frames.
	frames, saved atomic.Uint64
}

// wire returns the bytes of f to write to c: its compressed form when c
// negotiated permessage-deflate and f is worth compressing, else the plain
// frame; and how many bytes that saved.
func (l *Loop) wire(c *Conn, f *wsproto.Frame) (b []byte, saved int) {
	b = f.Bytes()
	if c.flags&fCompressed == 0 {
		return b, 0
	}
	d := l.z.d.Load()
	if d == nil {
		d = wsproto.NewDeflater(wsproto.DefaultDeflateLevel)
		l.z.d.Store(d)
	}
	if z := f.Deflated(d, l.srv.cfg.CompressionMinSize); z != nil {
		return z, len(b) - len(z)
	}
	return b, 0
}

// deflateMetrics are the compression counters, summed over the loops.
type deflateMetrics struct {
	frames, saved, messages, incompressible, in, out, seconds *prometheus.Desc
}

func newDeflateMetrics(d func(name, help string, labels ...string) *prometheus.Desc) deflateMetrics {
	return deflateMetrics{
		frames:         d("frames_compressed_total", "Frames written with permessage-deflate (the rest of frames_written_total went out plain: to connections without it, under compression_min_size, or not shrunk by deflate)."),
		saved:          d("compression_saved_bytes_total", "Bytes compressed frames saved on the wire against their plain frames, summed over every delivery."),
		messages:       d("compressions_total", "Messages compressed: each at most once however many compressed connections get it."),
		incompressible: d("compressions_incompressible_total", "Compressed messages that deflate did not shrink, sent plain to everyone."),
		in:             d("compression_input_bytes_total", "Payload bytes given to the compressor."),
		out:            d("compression_output_bytes_total", "Payload bytes it returned (an incompressible message counts its plain size)."),
		seconds:        d("compression_seconds_total", "Time the loops spent compressing messages."),
	}
}

func (m *deflateMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.frames, m.saved, m.messages, m.incompressible, m.in, m.out, m.seconds} {
		ch <- d
	}
}

func (m *deflateMetrics) collect(s *Server, ch chan<- prometheus.Metric) {
	var frames, saved, messages, incompressible, in, out, nanos uint64
	for _, l := range s.loops {
		frames += l.z.frames.Load()
		saved += l.z.saved.Load()
		if d := l.z.d.Load(); d != nil {
			st := d.Stats()
			messages += st.Messages.Load()
			incompressible += st.Incompressible.Load()
			in += st.In.Load()
			out += st.Out.Load()
			nanos += st.Nanos.Load()
		}
	}
	for _, c := range []struct {
		d *prometheus.Desc
		v float64
	}{{m.frames, float64(frames)}, {m.saved, float64(saved)}, {m.messages, float64(messages)},
		{m.incompressible, float64(incompressible)}, {m.in, float64(in)}, {m.out, float64(out)}, {m.seconds, float64(nanos) / 1e9}} {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, c.v)
	}
}
