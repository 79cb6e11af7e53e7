// Package conformance generates the MQTT conformance matrix, CONFORMANCE.md
// at the module root, from the spec tags in the code, and keeps those tags
// honest.
//
// DESIGN.md asks for a spec reference at every MUST: the normative id and
// the version it comes from, "[v5 MQTT-3.1.2-22]" or "[v3 MQTT-3.1.2-24]"
// (the same id can mean different rules in 3.1.1 and 5.0). [Scan] finds
// them in every Go file of the module, in comments and in strings:
//
//	// [v5 MQTT-3.1.2-22] [v3 MQTT-3.1.2-24]      one tag per bracket
//	// [v5 MQTT-3.2.2-19 MQTT-3.2.2-20]           several ids in one bracket
//	// [v5 MQTT-4.3.3-1..5] [v3 MQTT-2.3.1-6 .. -7]  ranges
//	Spec: "v5 MQTT-3.3.2-9"                       Spec strings of a ProtocolError
//	versioned(d.v, "MQTT-3.3.2-2", "MQTT-3.3.2-2")  package packet: 5.0 id, then 3.1.1 id
//	[MQTT-4.7.2-1]                                no version: see below
//	[v5 noid:dup-prop], "noid:truncated"          rules without a numbered id
//
// Tags in _test.go files count as "tested in", all others as "enforced in".
// Ids inside double quotes in a comment are examples, not tags.
//
// [Specs.Resolve] checks each tag against the statement lists vendored in
// testdata (the project's own paraphrases of the OASIS standards): the id
// must exist in the version the tag cites; an id without a version must
// exist in one version only, or name the same rule in both (sameRule), or
// sit in a package with a version convention (packageVersion). TestTags
// fails on every tag that does not, naming file:line and the fix.
//
// A broker-side statement (who is server, codec or both) that cannot apply
// to Tern's broker side is listed with the reason in
// testdata/not-applicable-3.1.1.tsv or testdata/not-applicable-5.0.tsv
// (see testdata/README.md). Every other one must be enforced and tested, a
// tag in non-test code and one in a test; TestNoSilentRows fails on each
// "silent" statement that is neither, per version (TestNoSilentRows/3.1.1,
// TestNoSilentRows/5.0), and TestNotApplicable on a not-applicable row that
// does not hold up.
//
// Regenerate the matrix from the module root with
//
//	go test ./internal/conformance -run TestMatrix -update
//
// and TestMatrix, run without -update, fails when CONFORMANCE.md is out of
// date. The package uses the standard library only.
package conformance
