package chat

// Nearest is the name within two edits of word (a typo, as git suggests), the closest
// first, or "" when none is that close. The command line and the UI suggest commands
// and flags with it.
func Nearest(word string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(word, n); d < bestDist && d < len(n) {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b, by bytes
// (command and flag names are ASCII): Levenshtein's, with two letters swapped counting
// as one edit ("/hepl" is one from /help, two from /bell).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
