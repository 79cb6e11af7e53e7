package auth

import (
	"testing"

	"github.com/ternmq/tern/broker"
)

// The broker calls a NonBlocking Authorizer directly: the ACL file must
// say it is one, or every PUBLISH would cost a goroutine.
func TestACLFileNonBlocking(t *testing.T) {
	var az broker.Authorizer = new(ACLFile)
	nb, ok := az.(broker.NonBlocking)
	if !ok || !nb.NonBlocking() {
		t.Fatal("*ACLFile is not broker.NonBlocking")
	}
}
