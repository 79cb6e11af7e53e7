package auth_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
	"github.com/ternmq/tern/internal/scram"
)

// A broker serves SCRAM-SHA-256 and SCRAM-SHA-512 from its password file
// by setting the file's SCRAM methods as Server.AuthMethods. Here the
// exchange is driven by hand, as the broker does with the Authentication
// Data of the client's CONNECT and AUTH packets.
func ExamplePasswordFile_SCRAMMethods() {
	dir, err := os.MkdirTemp("", "tern-scram")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	passwd := filepath.Join(dir, "passwd")

	// tern passwd writes SCRAM credentials along with the bcrypt hash.
	err = auth.PasswdCommand(auth.PasswdArgs{
		File: passwd, Create: true, Batch: true, User: "alice", Password: "s3cret", Cost: 4,
	}, nil, io.Discard, os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	pf, err := auth.LoadPasswordFile(passwd)
	if err != nil {
		log.Fatal(err)
	}
	srv := &broker.Server{Authenticator: pf, AuthMethods: pf.SCRAMMethods()}
	_ = srv // srv.ListenAndServe()

	ctx := context.Background()
	req := &broker.AuthRequest{ClientInfo: broker.ClientInfo{ClientID: "sensor-1"}, AuthMethod: auth.SCRAMSHA256}
	exchange, err := srv.AuthMethods[auth.SCRAMSHA256].Start(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	client := scram.NewClient(scram.SHA256, "alice", "s3cret")

	clientFirst, _ := client.First() // CONNECT
	serverFirst, done, err := exchange.Next(ctx, clientFirst)
	fmt.Println("AUTH 0x18:", strings.HasPrefix(string(serverFirst), "r="+client.Nonce), done, err)

	clientFinal, _ := client.Final(serverFirst) // AUTH 0x18
	serverFinal, done, err := exchange.Next(ctx, clientFinal)
	fmt.Println("CONNACK:", strings.HasPrefix(string(serverFinal), "v="), done, err)

	fmt.Println("server verified:", client.Verify(serverFinal) == nil)
	fmt.Println("user:", req.Username)
	// Output:
	// AUTH 0x18: true false <nil>
	// CONNACK: true true <nil>
	// server verified: true
	// user: alice
}
