package packet

// Pingreq is the PINGREQ packet (section 3.12).
type Pingreq struct{}

// Pingresp is the PINGRESP packet (section 3.13).
type Pingresp struct{}

func (*Pingreq) Type() Type  { return PINGREQ }
func (*Pingresp) Type() Type { return PINGRESP }

func (*Pingreq) decode(d *decoder, _ byte) error  { return d.end() }
func (*Pingresp) decode(d *decoder, _ byte) error { return d.end() }

var (
	pingreqBytes  = []byte{byte(PINGREQ) << 4, 0}
	pingrespBytes = []byte{byte(PINGRESP) << 4, 0}
)

func (*Pingreq) Append(dst []byte, _ Version) ([]byte, error) {
	return append(dst, pingreqBytes...), nil
}
func (*Pingresp) Append(dst []byte, _ Version) ([]byte, error) {
	return append(dst, pingrespBytes...), nil
}

func (*Pingreq) String() string  { return "PINGREQ" }
func (*Pingresp) String() string { return "PINGRESP" }
