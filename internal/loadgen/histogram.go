package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is a log-linear histogram of non-negative durations in the
// style of HdrHistogram: values below 2^subBits nanoseconds get a bucket
// each, and every power of two above is split into 2^subBits linear
// buckets, so a recorded value is known to within 1/2^subBits (0.8 %).
// Its memory is fixed (about 39 KiB), recording is O(1) and allocation
// free, and histograms merge by adding counts. The zero value is not
// usable; call NewHistogram. A Histogram is not safe for concurrent use.
type Histogram struct {
	counts []uint64
	total  uint64
	sum    float64 // nanoseconds, for the mean
	min    int64
	max    int64
}

const (
	subBits     = 7                  // 128 linear buckets per octave
	subCount    = 1 << subBits       // buckets per octave
	maxValueLog = 44                 // values are clamped below 2^44 ns (about 4.9 hours)
	maxValue    = 1<<maxValueLog - 1 // largest value recorded as is
	numBuckets  = (maxValueLog-subBits)*subCount + subCount
)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketOf returns the index of the bucket holding v (0 <= v <= maxValue).
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits
	return shift*subCount + int(v>>uint(shift))
}

// bucketRange returns the smallest and largest values of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*subCount {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	m := int64(i - shift*subCount)
	lo = m << uint(shift)
	return lo, lo + 1<<uint(shift) - 1
}

// Record adds one value; negative values count as 0 and values beyond
// about 4.9 hours are clamped.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if v > maxValue {
		v = maxValue
	}
	h.counts[bucketOf(v)]++
	h.total++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Max returns the largest recorded value, exactly.
func (h *Histogram) Max() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.max)
}

// Min returns the smallest recorded value, exactly.
func (h *Histogram) Min() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Mean returns the mean of the recorded values.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Merge adds the values of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Percentile returns the value below or at which q percent of the
// recorded values lie (q in [0, 100]): the largest value of the bucket
// that holds the value of rank ceil(q/100 * count), capped at the exact
// maximum. It is 0 for an empty histogram.
func (h *Histogram) Percentile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q / 100 * float64(h.total)))
	rank = max(rank, 1)
	rank = min(rank, h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return time.Duration(min(hi, h.max))
		}
	}
	return time.Duration(h.max)
}
