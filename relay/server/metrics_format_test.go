package server_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"pfschat/relay"
)

// TestMetricsExpositionFormat scrapes /metrics after some traffic (messages, an ack,
// an error frame) and checks it against the Prometheus text exposition format
// (version 0.0.4), so a scraper never refuses the page.
func TestMetricsExpositionFormat(t *testing.T) { eachStore(t, testMetricsExpositionFormat) }

func testMetricsExpositionFormat(t *testing.T, bk store) {
	r := bk.Start(t)
	alice, bob := newUser(t, r, "alice"), newUser(t, r, "bob")
	ctx := testCtx(t)
	for i := range 3 {
		if _, err := alice.c.Send(ctx, "bob", []byte("hello"), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.c.Ack(ctx, nextMessage(t, bob.c).ID); err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, r)
	expectErr(t, raw.request(map[string]any{"type": "send", "id": 1, "to": "bob", "body": "aGk=", "client_id": "x"}), relay.CodeNotLoggedIn)

	resp, err := http.Get(r.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want text/plain; version=0.0.4", ct)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	fams, errs := checkExposition(string(body))
	for _, e := range errs {
		t.Error(e)
	}
	// The page is not trivially valid: the families the traffic touched are there,
	// labelled ones included.
	for _, want := range []string{
		"pfschat_relay_connections", "pfschat_relay_frames_in_total", "pfschat_relay_errors_total",
		"pfschat_relay_messages_accepted_total", "pfschat_relay_commit_seconds",
	} {
		if fams[want] == 0 {
			t.Errorf("family %s has no samples", want)
		}
	}
	if t.Failed() {
		t.Logf("the page:\n%s", body)
	}
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// family is what the checker knows of one metric family while reading the page.
type family struct {
	typ       string
	help      bool
	samples   int
	lastLE    float64
	lastCount float64 // cumulative count of the previous bucket
	infCount  float64
	hasInf    bool
	count     float64
	hasCount  bool
}

// checkExposition checks a page against the Prometheus text exposition format:
// every line is a HELP, a TYPE, another comment or a sample `name{labels} value
// [timestamp]`; names and label names follow the grammar; each family has at most
// one HELP and one TYPE, both before its samples, and its lines are not interleaved
// with another family's; a histogram's buckets are cumulative, in increasing le
// order, end at le="+Inf" and agree with its _count. It returns the number of samples
// per family and every violation found.
func checkExposition(page string) (samples map[string]int, errs []error) {
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("line %d: %s", line, fmt.Sprintf(format, args...)))
	}
	if page == "" || !strings.HasSuffix(page, "\n") {
		return nil, []error{fmt.Errorf("page is empty or does not end with a newline")}
	}
	fams := map[string]*family{}
	done := map[string]bool{} // families whose lines have ended
	current := ""
	enter := func(line int, name string) *family {
		if name != current {
			if done[name] {
				fail(line, "family %s continues after another family's lines", name)
			}
			if current != "" {
				done[current] = true
			}
			current = name
		}
		f := fams[name]
		if f == nil {
			f = &family{lastLE: math.Inf(-1)}
			fams[name] = f
		}
		return f
	}
	for i, line := range strings.Split(strings.TrimSuffix(page, "\n"), "\n") {
		n := i + 1
		switch {
		case line == "":
			fail(n, "empty line")
		case strings.HasPrefix(line, "# HELP "), strings.HasPrefix(line, "# TYPE "):
			kind := line[2:6]
			name, rest, _ := strings.Cut(line[7:], " ")
			if !metricNameRE.MatchString(name) {
				fail(n, "%s of a bad metric name %q", kind, name)
				continue
			}
			f := enter(n, name)
			if f.samples > 0 {
				fail(n, "%s of %s after its samples", kind, name)
			}
			if kind == "HELP" {
				if f.help {
					fail(n, "second HELP for %s", name)
				}
				f.help = true
				if bad := badEscape(rest, `\n`); bad != "" {
					fail(n, "HELP text has the escape %q", bad)
				}
				continue
			}
			if f.typ != "" {
				fail(n, "second TYPE for %s", name)
			}
			switch rest {
			case "counter", "gauge", "histogram", "summary", "untyped":
				f.typ = rest
			default:
				fail(n, "TYPE %q for %s", rest, name)
			}
		case strings.HasPrefix(line, "#"):
			// another comment
		default:
			name, labels, value, err := parseSample(line)
			if err != nil {
				fail(n, "%v: %q", err, line)
				continue
			}
			fam := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && fams[base] != nil && fams[base].typ == "histogram" {
					fam = base
				}
			}
			f := enter(n, fam)
			if f.typ == "" {
				fail(n, "sample of %s before its TYPE", fam)
			}
			f.samples++
			if (f.typ == "counter" || f.typ == "histogram") && (value < 0 || math.IsNaN(value)) {
				fail(n, "%s %s is %v", f.typ, name, value)
			}
			if f.typ == "histogram" {
				checkHistogramSample(f, fam, name, labels, value, func(format string, args ...any) { fail(n, format, args...) })
			} else if name != fam {
				fail(n, "sample %s does not belong to %s family %s", name, f.typ, fam)
			}
		}
	}
	samples = map[string]int{}
	for name, f := range fams {
		samples[name] = f.samples
		if f.typ == "histogram" && f.samples > 0 && (!f.hasInf || !f.hasCount || f.infCount != f.count) {
			errs = append(errs, fmt.Errorf("histogram %s: +Inf bucket %v (present %v), _count %v (present %v)", name, f.infCount, f.hasInf, f.count, f.hasCount))
		}
	}
	return samples, errs
}

func checkHistogramSample(f *family, fam, name string, labels map[string]string, value float64, fail func(string, ...any)) {
	switch name {
	case fam + "_bucket":
		leText, ok := labels["le"]
		if !ok {
			fail("bucket of %s without le", fam)
			return
		}
		le, err := parseValue(leText)
		if err != nil {
			fail("bucket of %s with le %q: %v", fam, leText, err)
			return
		}
		if le <= f.lastLE {
			fail("bucket le=%q of %s not above the previous one", leText, fam)
		}
		if value < f.lastCount {
			fail("bucket le=%q of %s counts %v, less than the previous bucket's %v", leText, fam, value, f.lastCount)
		}
		f.lastLE, f.lastCount = le, value
		if math.IsInf(le, 1) {
			f.hasInf, f.infCount = true, value
		}
	case fam + "_count":
		f.hasCount, f.count = true, value
	case fam + "_sum":
	default:
		fail("sample %s does not belong to histogram %s", name, fam)
	}
}

// parseSample splits `name{label="value",...} value [timestamp]`.
func parseSample(line string) (name string, labels map[string]string, value float64, err error) {
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return "", nil, 0, fmt.Errorf("no value")
	}
	name, rest := line[:end], line[end:]
	if !metricNameRE.MatchString(name) {
		return "", nil, 0, fmt.Errorf("bad metric name %q", name)
	}
	labels = map[string]string{}
	if rest[0] == '{' {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return "", nil, 0, fmt.Errorf("label without =\"")
			}
			lname := rest[:eq]
			if !labelNameRE.MatchString(lname) {
				return "", nil, 0, fmt.Errorf("bad label name %q", lname)
			}
			if _, dup := labels[lname]; dup {
				return "", nil, 0, fmt.Errorf("label %s twice", lname)
			}
			lvalue, after, ok := cutQuoted(rest[eq+2:])
			if !ok {
				return "", nil, 0, fmt.Errorf("label %s: unterminated or badly escaped value", lname)
			}
			labels[lname] = lvalue
			rest = after
			if r, ok := strings.CutPrefix(rest, ","); ok {
				rest = r
			} else if !strings.HasPrefix(rest, "}") {
				return "", nil, 0, fmt.Errorf("label %s not followed by , or }", lname)
			}
		}
		rest = rest[1:]
	}
	fields := strings.Split(strings.TrimPrefix(rest, " "), " ")
	if !strings.HasPrefix(rest, " ") || len(fields) < 1 || len(fields) > 2 {
		return "", nil, 0, fmt.Errorf("want one space, a value and an optional timestamp")
	}
	if value, err = parseValue(fields[0]); err != nil {
		return "", nil, 0, err
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return "", nil, 0, fmt.Errorf("bad timestamp %q", fields[1])
		}
	}
	return name, labels, value, nil
}

// cutQuoted reads a label value up to its closing quote; the only escapes are \\,
// \" and \n.
func cutQuoted(s string) (value, rest string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			switch s[i] {
			case '\\', '"':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			default:
				return "", "", false
			}
		case '\n':
			return "", "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// badEscape returns the first backslash escape in s other than \\ and the allowed one.
func badEscape(s, allowed string) string {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if i+1 == len(s) {
			return `\`
		}
		if e := s[i : i+2]; e != `\\` && e != allowed {
			return e
		}
		i++
	}
	return ""
}

// parseValue parses a sample value: a Go float, or +Inf, -Inf, NaN.
func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "_xXpP") || strings.EqualFold(s, "inf") || strings.EqualFold(s, "infinity") {
		return 0, fmt.Errorf("bad value %q", s)
	}
	return v, nil
}

// TestExpositionCheckerRefuses: the checker above catches what it claims to.
func TestExpositionCheckerRefuses(t *testing.T) {
	for _, bad := range []string{
		"m 1", // no newline at the end
		"# TYPE m counter\n# TYPE m counter\nm 1\n",       // two TYPEs
		"# TYPE m counter\nm 1\n# HELP m late\n",          // HELP after samples
		"m 1\n",                                           // sample before TYPE
		"# TYPE 1m counter\n",                             // bad name
		"# TYPE m counter\nm{1a=\"x\"} 1\n",               // bad label name
		"# TYPE m counter\nm{a=\"x\\q\"} 1\n",             // bad escape
		"# TYPE m counter\nm{a=\"x\"}  1\n",               // two spaces
		"# TYPE m counter\nm one\n",                       // bad value
		"# TYPE m counter\nm -1\n",                        // negative counter
		"# TYPE m widget\n",                               // unknown type
		"# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n", // interleaved families
		"# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n", // not cumulative
		"# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",                                                // no +Inf
		"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",                                             // count disagrees
	} {
		if _, errs := checkExposition(bad); len(errs) == 0 {
			t.Errorf("accepted %q", bad)
		}
	}
	good := "# HELP m A \\\\ help\\n.\n# TYPE m counter\nm{a=\"x\\\"y\",b=\"\"} 1 1700000000000\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5e-3\nh_count 2\n"
	if _, errs := checkExposition(good); len(errs) > 0 {
		t.Errorf("refused a valid page: %v", errs)
	}
}
