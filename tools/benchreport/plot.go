package main

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
)

// Plots use the standard library only and carry no text: labels, units
// and the colour key live in the markdown caption next to each image.

var (
	white   = color.RGBA{255, 255, 255, 255}
	black   = color.RGBA{0, 0, 0, 255}
	grey    = color.RGBA{215, 215, 215, 255}
	palette = []color.RGBA{
		{31, 119, 180, 255}, // blue
		{255, 127, 14, 255}, // orange
		{44, 160, 44, 255},  // green
		{214, 39, 40, 255},  // red
	}
)

// canvas is a white image with a plot area inset by a margin.
type canvas struct {
	img                    *image.RGBA
	left, top, right, bott int
}

func newCanvas(w, h int) *canvas {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	return &canvas{img: img, left: 60, top: 20, right: w - 20, bott: h - 40}
}

func (c *canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	draw.Draw(c.img, image.Rect(x0, y0, x1, y1), &image.Uniform{col}, image.Point{}, draw.Src)
}

// axes draws the x and y axis lines.
func (c *canvas) axes() {
	c.rect(c.left-2, c.top, c.left, c.bott+2, black)
	c.rect(c.left-2, c.bott, c.right, c.bott+2, black)
}

// xtick draws a tick below the x axis at pixel x, and a light grid line.
func (c *canvas) xtick(x int, major bool) {
	c.rect(x, c.top, x+1, c.bott, grey)
	l := 6
	if major {
		l = 12
	}
	c.rect(x-1, c.bott+2, x+1, c.bott+2+l, black)
}

// ytick draws a tick left of the y axis at pixel y, and a light grid line.
func (c *canvas) ytick(y int, major bool) {
	c.rect(c.left, y, c.right, y+1, grey)
	l := 6
	if major {
		l = 12
	}
	c.rect(c.left-2-l, y-1, c.left-2, y+1, black)
}

// line draws a thick line (a square brush stepped along it).
func (c *canvas) line(x0, y0, x1, y1, width int, col color.Color) {
	dx, dy := float64(x1-x0), float64(y1-y0)
	n := int(math.Max(math.Abs(dx), math.Abs(dy))) + 1
	for i := 0; i <= n; i++ {
		x := x0 + int(math.Round(dx*float64(i)/float64(n)))
		y := y0 + int(math.Round(dy*float64(i)/float64(n)))
		c.rect(x-width/2, y-width/2, x-width/2+width, y-width/2+width, col)
	}
}

func (c *canvas) save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c.img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// latencyPlot: one curve per series over the points p50, p90, p99, p99.9,
// max (evenly spaced on x), y logarithmic in milliseconds from 0.01 to
// 100 ms with a major tick per decade.
func latencyPlot(path string, series [][]float64) error {
	c := newCanvas(720, 420)
	c.axes()
	const lo, hi = -2.0, 2.0 // log10 ms
	yOf := func(ms float64) int {
		v := math.Log10(math.Max(ms, 0.01))
		v = math.Min(v, hi)
		return c.bott - int((v-lo)/(hi-lo)*float64(c.bott-c.top))
	}
	for d := lo; d <= hi; d++ {
		c.ytick(yOf(math.Pow(10, d)), true)
		for m := 2.0; m < 10 && d < hi; m++ {
			y := yOf(m * math.Pow(10, d))
			c.rect(c.left-8, y, c.left-2, y+1, black)
		}
	}
	npts := 5
	xOf := func(i int) int { return c.left + 30 + i*(c.right-c.left-60)/(npts-1) }
	for i := 0; i < npts; i++ {
		c.xtick(xOf(i), true)
	}
	for s, pts := range series {
		col := palette[s%len(palette)]
		for i := 0; i+1 < len(pts); i++ {
			c.line(xOf(i), yOf(pts[i]), xOf(i+1), yOf(pts[i+1]), 4, col)
		}
		for i, p := range pts {
			x, y := xOf(i), yOf(p)
			c.rect(x-5, y-5, x+5, y+5, col)
		}
	}
	return c.save(path)
}

// bar is one failover trial: a bar from the fault (0) to the answer, a
// black mark where the address appeared; colour by implementation.
type bar struct {
	answerMS, addrMS float64
	series           int
}

// timelinePlot draws one horizontal bar per trial, x linear in ms from 0
// to the axis end, a major tick every step ms and a minor one halfway.
func timelinePlot(path string, bars []bar) (axisEnd, step float64, err error) {
	mx := 0.0
	for _, b := range bars {
		mx = math.Max(mx, math.Max(b.answerMS, b.addrMS))
	}
	step = 100
	for mx/step > 10 {
		step *= 2
	}
	axisEnd = math.Ceil(mx/step) * step
	if axisEnd == 0 {
		axisEnd = step
	}
	rowH := 26
	c := newCanvas(760, 60+rowH*len(bars))
	c.axes()
	xOf := func(ms float64) int { return c.left + int(ms/axisEnd*float64(c.right-c.left)) }
	for v := 0.0; v <= axisEnd+1e-9; v += step / 2 {
		c.xtick(xOf(v), math.Mod(v, step) == 0)
	}
	for i, b := range bars {
		y := c.top + 4 + i*rowH
		c.rect(c.left-14, y+rowH/2-1, c.left-8, y+rowH/2+1, black) // one row tick per trial
		if b.answerMS > 0 {
			c.rect(c.left, y+3, xOf(b.answerMS), y+rowH-3, palette[b.series%len(palette)])
		} else { // no answer: a thin red bar across the whole axis
			c.rect(c.left, y+rowH/2-2, c.right, y+rowH/2+2, palette[3])
		}
		if b.addrMS > 0 {
			x := xOf(b.addrMS)
			c.rect(x-1, y, x+2, y+rowH, black)
		}
	}
	return axisEnd, step, c.save(path)
}
