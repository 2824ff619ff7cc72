package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// The dashboard (grafana/recoverd.json) and the alert rules
// (prometheus/recoverd-rules.yaml) are checked with promtool (Debian's
// prometheus package; `make promtool` installs it) and against the metrics
// a real recoverd process exports.

const (
	dashboardPath = "grafana/recoverd.json"
	rulesPath     = "prometheus/recoverd-rules.yaml"
	rulesTestPath = "prometheus/recoverd-rules_test.yaml"
)

// promtool finds promtool ($PROMTOOL, else on PATH). Its absence fails the
// test: the rules are not checked by anything else.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): install Debian's prometheus package (`make promtool`: apt-get install -y prometheus) or set PROMTOOL", err)
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestAlertRules: promtool accepts the rules and passes their unit tests;
// every alert has a severity, a summary, a unit test, and a runbook in
// README.md that its runbook annotation points at.
func TestAlertRules(t *testing.T) {
	runPromtool(t, ".", "check", "rules", rulesPath)
	runPromtool(t, filepath.Dir(rulesTestPath), "test", "rules", filepath.Base(rulesTestPath))

	var rules ruleFile
	readYAML(t, rulesPath, &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, rulesTestPath, &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: no severity label or summary", r.Alert)
			}
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: %s has no unit test where it fires and one where it does not", r.Alert, rulesTestPath)
			}
			anchor := strings.ToLower(r.Alert)
			if r.Annotations["runbook"] != "deploy/README.md#"+anchor {
				t.Errorf("%s: runbook annotation %q, want deploy/README.md#%s", r.Alert, r.Annotations["runbook"], anchor)
			}
			if !regexp.MustCompile(`(?m)^#+ ` + r.Alert + `$`).Match(readme) {
				t.Errorf("%s: README.md has no runbook heading for it", r.Alert)
			}
		}
	}
	for _, want := range []string{"RecoverdRecoveryFailingRepeatedly", "RecoverdFallbackRateHigh", "RecoverdSnapshotRepositoryUnavailable", "RecoverdRetentionLeaseNearExpiry"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// expressions returns every PromQL expression of the dashboard (panel
// targets and template queries) with the Grafana variables substituted.
func (d dashboard) expressions(t *testing.T) []string {
	t.Helper()
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$instance", ".*")
	var out []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: no data source variable or no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, vars.Replace(tg.Expr))
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				// label_values(metric, label): the metric must exist.
				if m := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`).FindStringSubmatch(s); m != nil {
					out = append(out, m[1])
				} else {
					t.Errorf("template variable %s: query %q not understood", v.Name, s)
				}
			}
		}
	}
	return out
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: no uid, title or panel", dashboardPath)
	}
	return d
}

// TestDashboardQueriesParse: every dashboard query is valid PromQL, by
// promtool, as the expression of a recording rule.
func TestDashboardQueriesParse(t *testing.T) {
	exprs := readDashboard(t).expressions(t)
	var rules []map[string]string
	for i, e := range exprs {
		rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:query_%d", i), "expr": e})
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, ".", "check", "rules", path)
}

// exported scrapes a recoverd process started for the test: its metric
// families.
func exported(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	// The snapshot policy runs at a short interval on one shard, so that
	// the per-shard snapshot age is exported.
	node := testutil.StartNode(t, testutil.NodeOptions{Name: "monitored", Repo: "file://" + t.TempDir(),
		Args: []string{"--snapshot-interval", "100ms", "--snapshot-jitter", "0"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pb.NewShardServiceClient(node.Dial()).CreateShard(ctx, &pb.CreateShardRequest{Shard: &pb.ShardId{Index: "logs"}}); err != nil {
		t.Fatal(err)
	}
	var code int
	var body string
	for {
		code, body = httpGet(t, "http://"+node.HTTPAddr+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		if strings.Contains(body, "\nrecoverd_snapshot_age_seconds{") {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the snapshot policy took no snapshot within a minute: recoverd_snapshot_age_seconds is not exported")
		}
		time.Sleep(50 * time.Millisecond)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

var (
	selectorRE = regexp.MustCompile(`\b(recoverd_[a-zA-Z0-9_]+)(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	byRE       = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// family returns the exported family a name in a query means: itself, or
// the histogram or summary it is a _bucket, _sum or _count series of.
func family(mfs map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, bool) {
	if mf, ok := mfs[name]; ok {
		return mf, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if mf, ok := mfs[base]; ok && (mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY) {
				return mf, true
			}
		}
	}
	return nil, false
}

// labelValues returns the label names of a family and the values each
// takes.
func labelValues(mf *dto.MetricFamily) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if out[l.GetName()] == nil {
				out[l.GetName()] = map[string]bool{}
			}
			out[l.GetName()][l.GetValue()] = true
		}
	}
	if mf.GetType() == dto.MetricType_HISTOGRAM {
		out["le"] = nil
	}
	return out
}

// checkExpr checks one query against the exported families: every metric
// it names is exported, every label it matches or aggregates by is one of
// those metrics' (or a target label), and every label value it matches
// exactly (or as a list of alternatives) is one the node exports.
func checkExpr(t *testing.T, where, expr string, mfs map[string]*dto.MetricFamily, used map[string]bool) {
	t.Helper()
	labels := map[string]bool{"job": true, "instance": true}
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		mf, ok := family(mfs, m[1])
		if !ok {
			t.Errorf("%s: %s is not a metric recoverd exports (in %q)", where, m[1], expr)
			continue
		}
		used[mf.GetName()] = true
		lv := labelValues(mf)
		for l := range lv {
			labels[l] = true
		}
		for _, mm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			name, op, value := mm[1], mm[2], mm[3]
			if name == "job" || name == "instance" {
				continue
			}
			values, ok := lv[name]
			if !ok {
				t.Errorf("%s: %s has no label %s (in %q)", where, m[1], name, expr)
				continue
			}
			alternatives := []string{value}
			if op == "=~" || op == "!~" {
				alternatives = strings.Split(value, "|")
			}
			for _, v := range alternatives {
				if regexp.MustCompile(`^[a-z0-9_-]+$`).MatchString(v) && !values[v] {
					t.Errorf("%s: %s{%s} takes no value %q (in %q)", where, m[1], name, v, expr)
				}
			}
		}
	}
	for _, m := range byRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !labels[l] {
				t.Errorf("%s: aggregates by %s, a label none of its metrics has (in %q)", where, l, expr)
			}
		}
	}
}

// TestDashboardAndRulesNameExportedMetrics: every metric, label and label
// value the dashboard and the alert rules name is one a live recoverd
// exports, and every recoverd_* family it exports is on the dashboard.
func TestDashboardAndRulesNameExportedMetrics(t *testing.T) {
	mfs := exported(t)
	onDashboard := map[string]bool{}
	for _, e := range readDashboard(t).expressions(t) {
		checkExpr(t, dashboardPath, e, mfs, onDashboard)
	}
	var rules ruleFile
	readYAML(t, rulesPath, &rules)
	inRules := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			checkExpr(t, rulesPath+" "+r.Alert, r.Expr, mfs, inRules)
		}
	}
	for name := range mfs {
		if strings.HasPrefix(name, "recoverd_") && !onDashboard[name] {
			t.Errorf("recoverd exports %s and %s does not show it: add a panel", name, dashboardPath)
		}
	}
	if len(inRules) < 4 {
		t.Errorf("the rules name %d metrics", len(inRules))
	}
}
