package scram

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzServer feeds the server arbitrary client messages. It must never
// panic, must fail only with an *Error, and whatever it sends must be a
// well-formed message: a server-first-message whose nonce extends the
// client's, or a server-final-message.
func FuzzServer(f *testing.F) {
	f.Add([]byte(rfcClientFirst), []byte(rfcClientFinal))
	f.Add([]byte("y,,n=user,r=abc"), []byte("c=eSws,r=abc"+rfcServerNonce+",p=AAAA"))
	f.Add([]byte("n,a=user,n=user,r=abc,x=ext"), []byte("c=bixhPXVzZXIs,r=abc"+rfcServerNonce+",y=1,p=AAAA"))
	f.Add([]byte("n,,n=a=2Cb=3Dc,r=abc"), []byte("c=biws,r=x,p="))
	f.Add([]byte("p=tls-unique,,n=user,r=abc"), []byte(""))
	f.Add([]byte("n,,m=1,n=user,r=abc"), []byte("m=1"))
	f.Add([]byte("n,,n=us=er,r=abc"), []byte("c=biws"))
	f.Add([]byte("n,,n=mallory,r=abc"), []byte("c=biws,r=abc"+rfcServerNonce+",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	f.Add([]byte(",,,"), []byte(",,,"))
	st := rfcStore(f)
	st["a,b=c"] = st["user"]
	f.Fuzz(func(t *testing.T, first, final []byte) {
		ctx := context.Background()
		s := NewServer(SHA256, st)
		s.Nonce = rfcServerNonce
		out, done, err := s.Next(ctx, first)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || out != nil || done {
				t.Fatalf("client-first %q: %q, %v, %v", first, out, done, err)
			}
			return
		}
		if done {
			t.Fatal("done after the client-first-message")
		}
		sf, perr := parseServerFirst(out)
		if perr != nil || !strings.HasPrefix(sf.nonce, s.cf.nonce) || len(sf.nonce) <= len(s.cf.nonce) {
			t.Fatalf("server-first-message %q: %v", out, perr)
		}
		out, done, err = s.Next(ctx, final)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || out != nil || done {
				t.Fatalf("client-final %q: %q, %v, %v", final, out, done, err)
			}
			return
		}
		if !done {
			t.Fatal("not done after the client-final-message")
		}
		sig, perr := parseServerFinal(out)
		if perr != nil || len(sig) != SHA256.KeyLen() {
			t.Fatalf("server-final-message %q: %v", out, perr)
		}
		if _, ok := st[s.Username()]; !ok {
			t.Fatalf("unknown user %q authenticated", s.Username())
		}
	})
}
