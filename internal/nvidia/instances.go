package nvidia

import "strings"

// expectedGPUs is NMA's instance-info table (detection.md B1): instance
// type → NVIDIA GPUs it has. Types not listed are not checked against a
// count, since a wrong guess would fail healthy nodes.
var expectedGPUs = func() map[string]int {
	m := map[string]int{}
	add := func(family string, n int, sizes ...string) {
		for _, s := range sizes {
			m[family+"."+s] = n
		}
	}
	small := []string{"xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge"}
	add("g4dn", 1, small...)
	add("g4dn", 4, "12xlarge")
	add("g4dn", 8, "metal")
	for _, f := range []string{"g5", "g6", "g6e"} {
		add(f, 1, small...)
		add(f, 4, "12xlarge", "24xlarge")
		add(f, 8, "48xlarge")
	}
	add("g5g", 1, "xlarge", "2xlarge", "4xlarge", "8xlarge")
	add("g5g", 2, "16xlarge", "metal")
	add("g7", 8, "48xlarge")
	add("g7e", 1, "2xlarge", "4xlarge", "8xlarge")
	add("g7e", 2, "12xlarge")
	add("g7e", 4, "24xlarge")
	add("g7e", 8, "48xlarge")
	add("gr6", 1, "4xlarge", "8xlarge")
	add("p3", 1, "2xlarge")
	add("p3", 4, "8xlarge")
	add("p3", 8, "16xlarge")
	add("p3dn", 8, "24xlarge")
	add("p4d", 8, "24xlarge")
	add("p4de", 8, "24xlarge")
	add("p5", 1, "4xlarge")
	add("p5", 8, "48xlarge")
	add("p5e", 8, "48xlarge")
	add("p5en", 8, "48xlarge")
	add("p6-b200", 8, "48xlarge")
	add("p6-b300", 8, "48xlarge")
	add("p6e-gb200", 4, "36xlarge")
	return m
}()

// ExpectedGPUs returns the GPU count of an instance type, if known.
func ExpectedGPUs(instanceType string) (int, bool) {
	n, ok := expectedGPUs[strings.TrimSpace(instanceType)]
	return n, ok
}
