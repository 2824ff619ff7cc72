package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/recoverd/recoverd/internal/launch"
)

// sidecarTool is case 1's recovery in the sidecar mode.
const sidecarTool = "recoverd peer plan, sidecar"

// sidecarTool is the peer plan with each node in the sidecar mode.
func (b *bench) sidecarTool(d *dataset) tool {
	r := b.peerRun(d)
	r.sidecar = true
	return tool{sidecarTool, func(ctx context.Context) (sample, error) {
		if b.shardd == "" {
			// A private copy, like recoverd's: bin/ may be rebuilt meanwhile.
			dst := filepath.Join(b.work, "bin", "shardd")
			if err := copyFile(filepath.Join(b.cfg.bin, "shardd"), dst); err != nil {
				return sample{}, fmt.Errorf("shardd (make build builds it): %w", err)
			}
			b.shardd = dst
		}
		return b.runRecoverd(ctx, r)
	}}
}

// engines are the shardd processes of a sidecar-mode run, one per node,
// each beside its recoverd --engine on the same data directory.
type engines struct{ source, target *proc }

// startEngines starts shardd on the source's and the target's data (as
// `recoverctl demo` and the integration tests do) and points each node's
// recoverd at its engine socket: the engine's flags move to shardd.
// Without r.sidecar it does nothing.
func (b *bench) startEngines(ctx context.Context, r *recoverdRun, tgtDir string) (*engines, error) {
	e := &engines{}
	if !r.sidecar {
		return e, nil
	}
	start := func(name, data string, args *[]string) (*proc, error) {
		engineArgs, rest := launch.SplitEngineArgs(*args)
		sd, err := launch.StartShardd(ctx, launch.SharddOptions{Bin: b.shardd, Name: name, Data: data,
			Socket: filepath.Join(b.work, "run", name+"-engine.sock"), LogPath: filepath.Join(b.logDir, name+"-shardd.log"),
			Args: append([]string{"--log-level", "warn"}, engineArgs...), Env: cleanEnv(), Command: childCommand, ReadyTimeout: 60 * time.Second})
		if err != nil {
			return nil, err
		}
		*args = append(append([]string(nil), rest...), "--engine", sd.EngineTarget())
		return register(sd.Process), nil
	}
	var err error
	if e.source, err = start("source", r.source.dir, &r.srcArgs); err != nil {
		return nil, err
	}
	if e.target, err = start("target", tgtDir, &r.tgtArgs); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

// stop ends the engines once their recoverd have stopped.
func (e *engines) stop() {
	for _, p := range []*proc{e.target, e.source} {
		if p != nil {
			p.stop(20 * time.Second)
		}
	}
}

// cpu is the CPU seconds of the source's and the target's engine.
func (e *engines) cpu() (source, target float64) {
	if e.source != nil {
		source = cpuSeconds(e.source.PID())
	}
	if e.target != nil {
		target = cpuSeconds(e.target.PID())
	}
	return source, target
}

// read is what the source's engine read so far (the digest scan).
func (e *engines) read() int64 {
	if e.source == nil {
		return 0
	}
	return readIO(e.source.PID()).rchar
}

// sidecarLine compares case 1's sidecar run with the embedded one (not a
// target: what running the engine in its own process costs).
func (b *bench) sidecarLine() []string {
	c := b.find(1)
	if c == nil {
		return nil
	}
	sc, r := c.summarize(sidecarTool), c.summarize("recoverd peer plan")
	if sc.n == 0 || r.n == 0 {
		return nil
	}
	return []string{fmt.Sprintf("- Case 1, the sidecar mode (shardd + recoverd --engine) against the embedded engine (not a target): %.2f× its throughput, %.2f× its CPU seconds.",
		sc.rate/r.rate, sc.cpu/r.cpu)}
}
