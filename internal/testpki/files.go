package testpki

// ClientFiles makes a client certificate with common name cn, as Client
// does, and returns the names of its PEM files (certificate, key) for
// programs that take file names.
func (p *PKI) ClientFiles(cn string) (certFile, keyFile string, err error) {
	return p.leaf("client-"+cn, cn, false)
}
