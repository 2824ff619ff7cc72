package integration

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// s3Meter is an HTTP proxy in front of MinIO that sees the store's load
// as the store does, whatever process sent it and across node restarts:
// requests by class in ticks of 100ms (a rate is the most requests in any
// ten consecutive ticks), and the GET object requests in flight (the
// downloads, a ranged part each). The Host header goes through unchanged,
// so the clients' signatures (made for the proxy's address) still verify.
type s3Meter struct {
	Addr  string
	start time.Time

	mu       sync.Mutex
	inflight int               // GET object requests in flight
	ticks    []s3Tick          // by tick since start
	total    [numS3Classes]int // since start
}

const s3TickLen = 100 * time.Millisecond

// s3Tick is what the store saw in one tick.
type s3Tick struct {
	n          [numS3Classes]int
	peakGetsIn int // most GET object requests in flight at once
}

type s3Class int

const (
	s3List s3Class = iota
	s3Get
	s3Head
	s3Put
	s3Post
	s3Delete
	s3Other
	numS3Classes
)

var s3ClassNames = [numS3Classes]string{"list", "get", "head", "put", "post", "delete", "other"}

// getClass: S3's GET/HEAD limit (5,500/s per prefix) counts these.
func (c s3Class) getClass() bool { return c == s3List || c == s3Get || c == s3Head }

// putClass: S3's PUT/COPY/POST/DELETE limit (3,500/s per prefix).
func (c s3Class) putClass() bool { return c == s3Put || c == s3Post || c == s3Delete }

// classify names a path-style S3 request (/bucket/key?query).
func classify(r *http.Request) s3Class {
	q := r.URL.Query()
	key := ""
	if p := strings.TrimPrefix(r.URL.Path, "/"); strings.Contains(p, "/") {
		_, key, _ = strings.Cut(p, "/")
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case q.Has("location"):
			return s3Other
		case key == "" || q.Has("list-type"):
			return s3List
		}
		return s3Get
	case http.MethodHead:
		if key == "" {
			return s3Other // bucket exists?
		}
		return s3Head
	case http.MethodPut:
		return s3Put
	case http.MethodPost:
		if q.Has("delete") {
			return s3Delete
		}
		return s3Post
	case http.MethodDelete:
		return s3Delete
	}
	return s3Other
}

func startS3Meter(t *testing.T, endpoint string) *s3Meter {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: endpoint}
	m := &s3Meter{start: time.Now()}
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // what the client signed
		},
		Transport: tr,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.Addr = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := classify(r)
		m.begin(c)
		defer m.end(c)
		proxy.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("s3 meter: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
		tr.CloseIdleConnections()
	})
	return m
}

// tick returns the current tick's record; m.mu is held.
func (m *s3Meter) tick() *s3Tick {
	i := int(time.Since(m.start) / s3TickLen)
	for len(m.ticks) <= i {
		m.ticks = append(m.ticks, s3Tick{peakGetsIn: m.inflight})
	}
	return &m.ticks[i]
}

func (m *s3Meter) begin(c s3Class) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.tick()
	s.n[c]++
	m.total[c]++
	if c == s3Get {
		m.inflight++
		s.peakGetsIn = max(s.peakGetsIn, m.inflight)
	}
}

func (m *s3Meter) end(c s3Class) {
	if c != s3Get {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick()
	m.inflight--
}

// s3Mark is the meter's totals at one moment, to count what a phase sent.
type s3Mark struct {
	at    time.Time
	total [numS3Classes]int
}

func (m *s3Meter) mark() s3Mark {
	m.mu.Lock()
	defer m.mu.Unlock()
	return s3Mark{at: time.Now(), total: m.total}
}

// s3Load is what the store saw between two marks: every request, and the
// peaks over the ticks between them (the ticks the marks fall in
// included: phases are separated by longer than a tick).
type s3Load struct {
	Requests      map[string]int `json:"requests"`       // by class
	PeakRPS       int            `json:"peak_rps"`       // every request, in any second
	PeakGetRPS    int            `json:"peak_get_rps"`   // GET, HEAD and LIST
	PeakPutRPS    int            `json:"peak_put_rps"`   // PUT, POST and DELETE
	PeakDownloads int            `json:"peak_downloads"` // GET object requests in flight at once
	Seconds       float64        `json:"seconds"`
}

func (m *s3Meter) load(from, to s3Mark) s3Load {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick()
	out := s3Load{Requests: map[string]int{}, Seconds: to.at.Sub(from.at).Seconds()}
	for c := range to.total {
		out.Requests[s3ClassNames[c]] = to.total[c] - from.total[c]
	}
	a, b := int(from.at.Sub(m.start)/s3TickLen), min(int(to.at.Sub(m.start)/s3TickLen), len(m.ticks)-1)
	perSec := int(time.Second / s3TickLen)
	for i := a; i <= b; i++ {
		out.PeakDownloads = max(out.PeakDownloads, m.ticks[i].peakGetsIn)
		all, get, put := 0, 0, 0
		for j := i; j < i+perSec && j <= b; j++ {
			for c, n := range m.ticks[j].n {
				all += n
				if s3Class(c).getClass() {
					get += n
				}
				if s3Class(c).putClass() {
					put += n
				}
			}
		}
		out.PeakRPS, out.PeakGetRPS, out.PeakPutRPS = max(out.PeakRPS, all), max(out.PeakGetRPS, get), max(out.PeakPutRPS, put)
	}
	return out
}
