package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of
// two, so a recorded value is off by at most 1/2^subBits (under 1.6%).
const subBits = 6

const (
	subCount = 1 << subBits
	// maxExp covers up to 2^(maxExp+subBits) µs, over 19 hours.
	maxExp = 30
)

// Histogram records durations with a bounded relative error, in the manner of
// an HDR histogram: buckets are linear within each power of two (log-linear),
// so the p99.9 of a run of millions of requests costs a few KiB. The zero
// value is ready to use. It is not safe for concurrent use: give each worker
// its own and Merge them.
type Histogram struct {
	counts [(maxExp + 1) * subCount]int64
	n      int64
	max    int64 // µs
	sum    int64 // µs
}

// bucket is the index of v (µs): values below subCount have a bucket each;
// above, the top subBits bits after the leading one choose the bucket.
func bucket(v int64) int {
	if v < subCount {
		return int(v)
	}
	exp := bits.Len64(uint64(v)) - subBits // ≥ 1
	if exp > maxExp {
		return len(Histogram{}.counts) - 1
	}
	sub := int(v>>(exp-1)) - subCount // in [0, subCount)
	return exp*subCount + sub
}

// lowest is the smallest value (µs) that falls in bucket i.
func lowest(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	exp, sub := i/subCount, i%subCount
	return int64(subCount+sub) << (exp - 1)
}

// Record adds one duration, rounded down to the microsecond; a negative one
// counts as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d/time.Microsecond), 0)
	h.counts[bucket(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

// Merge adds o's records to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of records.
func (h *Histogram) Count() int64 { return h.n }

// Max is the largest duration recorded (exact, to the microsecond).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Mean is the average duration recorded.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/h.n) * time.Microsecond
}

// Quantile is the duration below which a share q (0 < q ≤ 1) of the records
// fall: the upper edge of the bucket holding the record of rank ⌈q·n⌉, never
// more than Max. 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(h.n))), 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			upper := h.max
			if i+1 < len(h.counts) {
				upper = min(lowest(i+1)-1, h.max)
			}
			return time.Duration(upper) * time.Microsecond
		}
	}
	return h.Max()
}
