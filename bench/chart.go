package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
)

// The chart is drawn with image/png and a built-in bitmap font: the
// charting modules would have to be added to go.mod, which the bench must
// not touch (other work edits it), and a bar chart needs no more than this.

var (
	white  = color.RGBA{255, 255, 255, 255}
	ink    = color.RGBA{40, 40, 40, 255}
	grid   = color.RGBA{225, 225, 225, 255}
	red    = color.RGBA{200, 30, 30, 255}
	colors = map[string]color.RGBA{
		"recoverd": {31, 119, 180, 255},
		"rsync":    {255, 127, 14, 255},
		"cp":       {127, 127, 127, 255},
		"rclone":   {44, 160, 44, 255},
	}
	altBlue = color.RGBA{120, 175, 220, 255}
)

const (
	fontScale = 2
	charW     = 6 * fontScale
	lineH     = 9 * fontScale
	barW      = 112
	barGap    = 12
	groupGap  = 64
	left      = 110
	right     = 120
	top       = 90
	plotH     = 460
	bottom    = 170
)

type canvas struct{ *image.RGBA }

func (c canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	for y := max(0, y0); y < min(c.Bounds().Dy(), y1); y++ {
		for x := max(0, x0); x < min(c.Bounds().Dx(), x1); x++ {
			c.Set(x, y, col)
		}
	}
}

// text draws s with its top-left corner at x, y.
func (c canvas) text(x, y int, s string, col color.Color, scale int) {
	for _, r := range s {
		g, ok := font5x7[r]
		if !ok && r != ' ' {
			g = font5x7['?']
		}
		for row := 0; row < 7; row++ {
			for bit := 0; bit < 5; bit++ {
				if g[row]&(0x10>>bit) != 0 {
					c.rect(x+bit*scale, y+row*scale, x+(bit+1)*scale, y+(row+1)*scale, col)
				}
			}
		}
		x += 6 * scale
	}
}

func textWidth(s string, scale int) int { return len(s) * 6 * scale }

// centered draws s centered on cx.
func (c canvas) centered(cx, y int, s string, col color.Color, scale int) {
	c.text(cx-textWidth(s, scale)/2, y, s, col, scale)
}

// wrap splits s into lines of at most n characters at spaces.
func wrap(s string, n int) []string {
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		switch {
		case cur == "":
			cur = w
		case len(cur)+1+len(w) <= n:
			cur += " " + w
		default:
			lines = append(lines, cur)
			cur = w
		}
	}
	return append(lines, cur)
}

// chartLabel is a tool's name under its bar.
func chartLabel(t string) string {
	if i := strings.Index(t, ", --throttle"); i > 0 {
		return t[:i]
	}
	if n, ok := strings.CutPrefix(t, "rclone copy --transfers "); ok {
		return "rclone " + n + " transfers"
	}
	r := strings.NewReplacer(" -a --whole-file", "", ", zstd", " zstd", " plan", "", ", no digest check", " no digest")
	return r.Replace(t)
}

func barColor(c *caseResult, tool string) color.RGBA {
	first, _, _ := strings.Cut(tool, " ")
	if c.id == 6 {
		if strings.HasSuffix(tool, "off") {
			return altBlue
		}
		return colors["recoverd"]
	}
	if (c.id == 4 && strings.Contains(tool, "peer")) || strings.Contains(tool, "no digest") || strings.HasSuffix(tool, "--insecure") {
		return altBlue
	}
	if col, ok := colors[first]; ok {
		return col
	}
	return ink
}

// niceStep picks a grid step of 1, 2 or 5 times a power of ten.
func niceStep(maxV float64, lines int) float64 {
	raw := maxV / float64(lines)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// writeChart draws the median throughput of every tool of every MB/s case
// as grouped bars (the ops-only case is in ops/s: in the table only).
func writeChart(path string, results []*caseResult) error {
	var cases []*caseResult
	bars := 0
	maxV := 1.0
	for _, c := range results {
		if c.unit != "MB/s" {
			continue
		}
		cases = append(cases, c)
		bars += len(c.tools)
		for _, t := range c.tools {
			s := c.summarize(t)
			maxV = max(maxV, s.rate, c.throttle, mbps(s.bytes, s.filesStage))
		}
	}
	if len(cases) == 0 {
		return nil
	}
	width := left + right + bars*barW + (bars-len(cases))*barGap + (len(cases)-1)*groupGap
	title := "recoverd vs rsync, rclone and cp: throughput (MB/s, median of runs)"
	width = max(width, left+textWidth(title, fontScale)+right)
	height := top + plotH + bottom
	c := canvas{image.NewRGBA(image.Rect(0, 0, width, height))}
	c.rect(0, 0, width, height, white)
	c.text(left, 24, title, ink, fontScale)
	c.text(left, 24+lineH+6, "higher is better; MB = 10^6 bytes; black tick: recoverd's files stage alone; the ops-only case (ops/s) is in REPORT.md only", ink, fontScale)

	step := niceStep(maxV*1.08, 6)
	yMax := math.Ceil(maxV*1.08/step) * step
	y := func(v float64) int { return top + plotH - int(v/yMax*float64(plotH)+0.5) }
	for v := 0.0; v <= yMax+step/2; v += step {
		c.rect(left, y(v), width-right, y(v)+1, grid)
		lbl := fmt.Sprintf("%.0f", v)
		c.text(left-10-textWidth(lbl, fontScale), y(v)-7, lbl, ink, fontScale)
	}
	c.rect(left, top, left+2, top+plotH+1, ink)
	c.rect(left, top+plotH, width-right, top+plotH+2, ink)

	x := left + 16
	for _, cs := range cases {
		gx := x
		for i, t := range cs.tools {
			if i > 0 {
				x += barGap
			}
			s := cs.summarize(t)
			c.rect(x, y(s.rate), x+barW, top+plotH, barColor(cs, t))
			c.centered(x+barW/2, y(s.rate)-lineH, fmt.Sprintf("%.0f", s.rate), ink, fontScale)
			if fs := mbps(s.bytes, s.filesStage); s.filesStage > 0 && cs.unit == "MB/s" {
				// recoverd's files stage alone: the transfer without the
				// checks that follow it.
				c.rect(x+8, y(fs)-2, x+barW-8, y(fs)+2, ink)
				c.centered(x+barW/2, y(fs)-lineH-2, fmt.Sprintf("%.0f", fs), ink, 1)
			}
			for j, l := range wrap(chartLabel(t), barW/charW) {
				c.centered(x+barW/2, top+plotH+10+j*lineH, l, ink, fontScale)
			}
			x += barW
		}
		if cs.throttle > 0 {
			for dx := gx - 8; dx < x+8; dx += 12 {
				c.rect(dx, y(cs.throttle)-1, min(dx+7, x+8), y(cs.throttle)+2, red)
			}
			c.text(gx, y(cs.throttle)-lineH-18, fmt.Sprintf("%.0f set", cs.throttle), red, fontScale)
		}
		for j, l := range wrap(cs.short, max(x-gx, 2*barW)/charW) {
			c.centered((gx+x)/2, top+plotH+10+4*lineH+j*lineH, l, color.RGBA{0, 0, 0, 255}, fontScale)
		}
		x += groupGap
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
