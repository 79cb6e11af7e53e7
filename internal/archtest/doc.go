// Package archtest holds the test that keeps Tern's layering honest: lower
// layers never import higher ones (see DESIGN.md, "The shape of the house").
// It has no code of its own.
package archtest
