package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type flagValue struct{ s string }

func (v *flagValue) String() string     { return v.s }
func (v *flagValue) Set(s string) error { v.s = s; return nil }

type varies []string

func (v *varies) String() string     { return strings.Join(*v, " ") }
func (v *varies) Set(s string) error { *v = append(*v, s); return nil }

func run(args []string, stdout, stderr io.Writer) int {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `sim: simulates recoverd recovering a fleet after a failure (see sim/doc.go, SCALE.md).

  go run ./sim -nodes 1000 -shards-per-node 1000 -fail rack:0
  go run ./sim -fail zone:0 -vary throttle=100MB,250MB -vary use-snapshots=true,false
  go run ./sim -scenario sim/testdata/cluster6.json     (calibration against a real cluster)

Flags:
`)
		fs.PrintDefaults()
	}
	scenario := fs.String("scenario", "", "JSON file of settings, keys are the flag names (flags given on the command line win)")
	out := fs.String("o", "text", "output: text, or json")
	var vary varies
	fs.Var(&vary, "vary", "NAME=V1,V2,...: one run per value, as a Markdown table; repeat for every combination")
	values := map[string]*flagValue{}
	for _, o := range options {
		v := &flagValue{s: o.get(&cfg)}
		values[o.name] = v
		fs.Var(v, o.name, o.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sim: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *scenario != "" {
		if err := loadScenario(&cfg, *scenario); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	var errs []error
	fs.Visit(func(f *flag.Flag) {
		if o, ok := optionByName(f.Name); ok {
			if err := o.set(&cfg, values[f.Name].s); err != nil {
				errs = append(errs, fmt.Errorf("sim: -%s: %w", f.Name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if len(vary) > 0 {
		if err := runVaried(cfg, vary, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	res, err := Simulate(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if cfg.Timeline != "" {
		if err := os.WriteFile(cfg.Timeline, []byte(strings.Join(res.Timeline, "")), 0o644); err != nil {
			fmt.Fprintln(stderr, "sim: timeline:", err)
			return 1
		}
	}
	if *out == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	} else {
		res.write(stdout)
	}
	if len(res.Violations) > 0 {
		return 1
	}
	return 0
}

// Simulate runs one scenario.
func Simulate(cfg Config) (*Result, error) {
	start := time.Now()
	e, err := newEngine(&cfg)
	if err != nil {
		return nil, err
	}
	e.simulate()
	e.res.WallSeconds = time.Since(start).Seconds()
	return &e.res, nil
}

// loadScenario applies a JSON object of settings: the calibration hook
// (a small real cluster's parameters and its measured time, -measured).
func loadScenario(cfg *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("sim: scenario: %w", err)
	}
	var raw map[string]any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("sim: scenario %s: %w", path, err)
	}
	for k, v := range raw {
		if strings.HasPrefix(k, "_") {
			continue // comments
		}
		o, ok := optionByName(k)
		if !ok {
			return fmt.Errorf("sim: scenario %s: unknown key %q", path, k)
		}
		if err := o.set(cfg, fmt.Sprint(v)); err != nil {
			return fmt.Errorf("sim: scenario %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// runVaried runs every combination of the -vary values and prints one
// Markdown table row per run.
func runVaried(base Config, vary []string, w io.Writer) error {
	type dim struct {
		name   string
		values []string
	}
	var dims []dim
	for _, v := range vary {
		name, vals, ok := strings.Cut(v, "=")
		if _, known := optionByName(name); !ok || !known || vals == "" {
			return fmt.Errorf("sim: -vary %q: want NAME=V1,V2 with NAME a flag", v)
		}
		dims = append(dims, dim{name, strings.Split(vals, ",")})
	}
	var head []string
	for _, d := range dims {
		head = append(head, d.name)
	}
	background := base.Fail == "none"
	if background {
		head = append(head, "GET-class req/s (LIST, GET)", "PUT-class req/s (PUT, POST, DELETE)", "per prefix GET / PUT", "sweep requests per node")
	} else {
		head = append(head, "full redundancy", "copy p99", "plans peer/hybrid/snapshot", "from peers", "from repository",
			"GET-class req/s peak (p99)", "background GET/PUT req/s", "busiest prefix peak", "503s", "fallbacks + hand-offs", "pin-wait failures", "peak downloads (GET streams)", "limits held")
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	idx := make([]int, len(dims))
	for {
		cfg := base
		var row []string
		for i, d := range dims {
			o, _ := optionByName(d.name)
			if err := o.set(&cfg, d.values[idx[i]]); err != nil {
				return fmt.Errorf("sim: -vary %s=%s: %w", d.name, d.values[idx[i]], err)
			}
			row = append(row, d.values[idx[i]])
		}
		res, err := Simulate(cfg)
		if err != nil {
			return err
		}
		held := "yes"
		if len(res.Violations) > 0 {
			held = "NO: " + res.Violations[0]
		}
		if bg := res.Background; background {
			row = append(row, fmt.Sprintf("%s (%s, %s)", num(bg.get), num(bg.snapshot[reqList]+bg.cleanup[reqList]), num(bg.snapshot[reqGet]+bg.cleanup[reqGet])),
				fmt.Sprintf("%s (%s, %s, %s)", num(bg.put), num(bg.snapshot[reqPut]), num(bg.snapshot[reqPost]), num(bg.snapshot[reqDelete])),
				fmt.Sprintf("%.2f / %.2f", bg.get/float64(res.Prefixes), bg.put/float64(res.Prefixes)), num(bg.cleanupPerNode))
		} else {
			row = append(row, dur(res.TimeToRedundancy), dur(res.CopyP99),
				fmt.Sprintf("%d/%d/%d", res.Plans[0], res.Plans[1], res.Plans[2]), tb(res.BytesPeer), tb(res.BytesRepo),
				fmt.Sprintf("%s (%s)", num(res.PeakGET), num(res.P99GET)), num(res.Background.get)+" / "+num(res.Background.put),
				num(res.PeakHot), num(float64(res.SlowDowns)),
				fmt.Sprintf("%d + %d", res.Fallbacks, res.Handoffs), fmt.Sprint(res.PinWaitFailures),
				fmt.Sprintf("%s (%s)", num(float64(res.PeakDownloads)), num(float64(res.PeakGetStreams))), held)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		// Next combination, last dimension fastest.
		i := len(dims) - 1
		for ; i >= 0; i-- {
			if idx[i]++; idx[i] < len(dims[i].values) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return nil
		}
	}
}
