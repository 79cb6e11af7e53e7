package auth_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
)

// An embedding program loads a password file and an ACL file and sets
// them as the broker Config's Authenticator and Authorizer. Here they are
// called directly, as the broker would.
func Example() {
	dir, err := os.MkdirTemp("", "tern-auth")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	passwd := filepath.Join(dir, "passwd")
	aclPath := filepath.Join(dir, "acl")

	// What "tern passwd -c -b passwd alice s3cret" does.
	err = auth.PasswdCommand(auth.PasswdArgs{
		File: passwd, Create: true, Batch: true, User: "alice", Password: "s3cret",
		Cost: 4, // the default, 12, is right for real use; 4 keeps the example fast
	}, nil, io.Discard, os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	err = os.WriteFile(aclPath, []byte(`user alice
topic readwrite alice/#
topic deny alice/secret/#
pattern read devices/%c/#
`), 0o600)
	if err != nil {
		log.Fatal(err)
	}

	authn, err := auth.LoadPasswordFile(passwd)
	if err != nil {
		log.Fatal(err)
	}
	authz, err := auth.LoadACLFile(aclPath)
	if err != nil {
		log.Fatal(err)
	}
	// config.Authenticator = authn; config.Authorizer = authz

	ctx := context.Background()
	req := &broker.AuthRequest{
		ClientInfo: broker.ClientInfo{ClientID: "sensor-1", Username: "alice"},
		Password:   []byte("s3cret"),
	}
	fmt.Println("connect:", authn.Authenticate(ctx, req))
	req.Password = []byte("guess")
	fmt.Println("wrong password refused:", authn.Authenticate(ctx, req) == broker.ErrBadCredentials)

	c := &req.ClientInfo
	fmt.Println("publish alice/kitchen:", authz.Authorize(ctx, c, broker.ActionPublish, "alice/kitchen"))
	fmt.Println("publish bob/kitchen:", authz.Authorize(ctx, c, broker.ActionPublish, "bob/kitchen"))
	fmt.Println("subscribe alice/+/temp:", authz.Authorize(ctx, c, broker.ActionSubscribe, "alice/+/temp"))
	fmt.Println("subscribe #:", authz.Authorize(ctx, c, broker.ActionSubscribe, "#"))
	fmt.Println("receive alice/secret/x:", authz.AuthorizeReceive(c, "alice/secret/x"))
	fmt.Println("subscribe devices/sensor-1/#:", authz.Authorize(ctx, c, broker.ActionSubscribe, "devices/sensor-1/#"))
	// Output:
	// connect: <nil>
	// wrong password refused: true
	// publish alice/kitchen: true
	// publish bob/kitchen: false
	// subscribe alice/+/temp: true
	// subscribe #: false
	// receive alice/secret/x: false
	// subscribe devices/sensor-1/#: true
}
