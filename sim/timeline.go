package main

import (
	"fmt"
)

// timeline collects one CSV row per TimelineEvery seconds: recoveries by
// state, bytes per second by source, downloads in flight, and the
// recoveries' request rates against the store. main writes it out.
type timeline struct {
	every      float64
	prev       float64
	rows       []string
	peer, repo float64 // bytes since the last row
}

const timelineHeader = "t_s,waiting,running,rebuilt,peer_MBps,repo_MBps,downloads,get_streams,list_rps,get_rps,head_rps,slowdown_rps,hot_prefix_rps,background_get_rps\n"

func (tl *timeline) sample(e *engine, t float64, force bool) {
	if !force && t+1e-9 < tl.prev+tl.every || t <= tl.prev {
		return
	}
	running, dl := 0, 0
	for i := range e.nodes {
		running += int(e.nodes[i].slots)
		dl += int(e.nodes[i].dlBusy)
	}
	rebuilt := len(e.res.Done_)
	waiting := e.submitted - rebuilt - running
	var n [numKinds]float64
	var slow, hot float64
	from := int(tl.prev)
	for sec := from; sec < int(t) && sec < len(e.st.series); sec++ {
		ss := e.st.series[sec]
		for k := range numKinds {
			n[k] += float64(ss.n[k])
		}
		slow += float64(ss.slow)
		hot = max(hot, float64(ss.hot))
	}
	span := max(t-tl.prev, e.cfg.DT)
	secs := max(float64(int(t)-from), 1)
	tl.rows = append(tl.rows, fmt.Sprintf("%.0f,%d,%d,%d,%.1f,%.1f,%d,%d,%.1f,%.1f,%.1f,%.1f,%.0f,%.0f\n",
		t, waiting, running, rebuilt, tl.peer/span/1e6, tl.repo/span/1e6, dl, e.getStreams,
		n[reqList]/secs, n[reqGet]/secs, n[reqHead]/secs, slow/secs, hot, e.st.bg.get))
	tl.peer, tl.repo = 0, 0
	tl.prev = t
}
