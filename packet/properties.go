package packet

import (
	"fmt"
	"strconv"
	"strings"
)

// PropertyID identifies an MQTT 5 property (section 2.2.2.2).
type PropertyID byte

// MQTT 5 property identifiers.
const (
	PropPayloadFormat        PropertyID = 0x01
	PropMessageExpiry        PropertyID = 0x02
	PropContentType          PropertyID = 0x03
	PropResponseTopic        PropertyID = 0x08
	PropCorrelationData      PropertyID = 0x09
	PropSubscriptionID       PropertyID = 0x0B
	PropSessionExpiry        PropertyID = 0x11
	PropAssignedClientID     PropertyID = 0x12
	PropServerKeepAlive      PropertyID = 0x13
	PropAuthMethod           PropertyID = 0x15
	PropAuthData             PropertyID = 0x16
	PropRequestProblemInfo   PropertyID = 0x17
	PropWillDelay            PropertyID = 0x18
	PropRequestResponseInfo  PropertyID = 0x19
	PropResponseInfo         PropertyID = 0x1A
	PropServerReference      PropertyID = 0x1C
	PropReasonString         PropertyID = 0x1F
	PropReceiveMaximum       PropertyID = 0x21
	PropTopicAliasMaximum    PropertyID = 0x22
	PropTopicAlias           PropertyID = 0x23
	PropMaximumQoS           PropertyID = 0x24
	PropRetainAvailable      PropertyID = 0x25
	PropUser                 PropertyID = 0x26
	PropMaximumPacketSize    PropertyID = 0x27
	PropWildcardSubAvailable PropertyID = 0x28
	PropSubIDAvailable       PropertyID = 0x29
	PropSharedSubAvailable   PropertyID = 0x2A
	maxPropertyID                       = 0x2A
	willContext              Type       = 16 // property context of the will properties in CONNECT
)

type propKind byte

const (
	kByte propKind = iota
	kU16
	kU32
	kVBI
	kString
	kBinary
	kPair
)

type propInfo struct {
	name    string
	kind    propKind
	allowed uint32 // bit t for packet type t, bit 16 for will properties
}

func in(ts ...Type) uint32 {
	var m uint32
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

// propTable is section 2.2.2.2's table: each property's type and the
// packets it may appear in.
var propTable = [maxPropertyID + 1]propInfo{
	PropPayloadFormat:        {"PayloadFormat", kByte, in(PUBLISH, willContext)},
	PropMessageExpiry:        {"MessageExpiry", kU32, in(PUBLISH, willContext)},
	PropContentType:          {"ContentType", kString, in(PUBLISH, willContext)},
	PropResponseTopic:        {"ResponseTopic", kString, in(PUBLISH, willContext)},
	PropCorrelationData:      {"CorrelationData", kBinary, in(PUBLISH, willContext)},
	PropSubscriptionID:       {"SubscriptionID", kVBI, in(PUBLISH, SUBSCRIBE)},
	PropSessionExpiry:        {"SessionExpiry", kU32, in(CONNECT, CONNACK, DISCONNECT)},
	PropAssignedClientID:     {"AssignedClientID", kString, in(CONNACK)},
	PropServerKeepAlive:      {"ServerKeepAlive", kU16, in(CONNACK)},
	PropAuthMethod:           {"AuthMethod", kString, in(CONNECT, CONNACK, AUTH)},
	PropAuthData:             {"AuthData", kBinary, in(CONNECT, CONNACK, AUTH)},
	PropRequestProblemInfo:   {"RequestProblemInfo", kByte, in(CONNECT)},
	PropWillDelay:            {"WillDelay", kU32, in(willContext)},
	PropRequestResponseInfo:  {"RequestResponseInfo", kByte, in(CONNECT)},
	PropResponseInfo:         {"ResponseInfo", kString, in(CONNACK)},
	PropServerReference:      {"ServerReference", kString, in(CONNACK, DISCONNECT)},
	PropReasonString:         {"ReasonString", kString, in(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH)},
	PropReceiveMaximum:       {"ReceiveMaximum", kU16, in(CONNECT, CONNACK)},
	PropTopicAliasMaximum:    {"TopicAliasMaximum", kU16, in(CONNECT, CONNACK)},
	PropTopicAlias:           {"TopicAlias", kU16, in(PUBLISH)},
	PropMaximumQoS:           {"MaximumQoS", kByte, in(CONNACK)},
	PropRetainAvailable:      {"RetainAvailable", kByte, in(CONNACK)},
	PropUser:                 {"User", kPair, in(CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH, willContext)},
	PropMaximumPacketSize:    {"MaximumPacketSize", kU32, in(CONNECT, CONNACK)},
	PropWildcardSubAvailable: {"WildcardSubAvailable", kByte, in(CONNACK)},
	PropSubIDAvailable:       {"SubIDAvailable", kByte, in(CONNACK)},
	PropSharedSubAvailable:   {"SharedSubAvailable", kByte, in(CONNACK)},
}

// String returns the property's name, e.g. "MessageExpiry".
func (id PropertyID) String() string {
	if id <= maxPropertyID && propTable[id].name != "" {
		return propTable[id].name
	}
	return "Property(0x" + strconv.FormatUint(uint64(id), 16) + ")"
}

// AllowedIn reports whether the property may appear in packets of type t.
func (id PropertyID) AllowedIn(t Type) bool {
	return id <= maxPropertyID && propTable[id].allowed&(1<<t) != 0
}

// UserProperty is one name / value pair; a packet may carry many, in order,
// with repeated names.
type UserProperty struct {
	Key, Value string
}

// Properties holds the MQTT 5 properties of a packet (or of a will). A
// property is sent when its field is non-zero or it was marked present
// with Mark; decoding marks every property it reads. Only the properties a
// packet type allows are encoded; see PropertyID.AllowedIn.
type Properties struct {
	present uint64 // bit id: the property was decoded or marked

	// Fields are grouped by size to keep the struct small; the comment
	// gives each property's identifier.
	ContentType      string // 0x03
	ResponseTopic    string // 0x08
	AssignedClientID string // 0x12
	AuthMethod       string // 0x15
	ResponseInfo     string // 0x1A
	ServerReference  string // 0x1C
	ReasonString     string // 0x1F

	CorrelationData []byte         // 0x09
	SubscriptionIDs []uint32       // 0x0B: several only in a PUBLISH to a client
	AuthData        []byte         // 0x16
	User            []UserProperty // 0x26: in order, names may repeat

	MessageExpiry     uint32 // 0x02: seconds
	SessionExpiry     uint32 // 0x11: seconds; 0xFFFFFFFF never expires
	WillDelay         uint32 // 0x18: seconds
	MaximumPacketSize uint32 // 0x27: absent means no limit

	ServerKeepAlive   uint16 // 0x13: seconds
	ReceiveMaximum    uint16 // 0x21: absent means 65535
	TopicAliasMaximum uint16 // 0x22
	TopicAlias        uint16 // 0x23

	PayloadFormat        byte // 0x01: 0 unspecified bytes, 1 UTF-8
	RequestProblemInfo   byte // 0x17: absent means 1
	RequestResponseInfo  byte // 0x19
	MaximumQoS           byte // 0x24: absent means 2
	RetainAvailable      byte // 0x25: absent means 1
	WildcardSubAvailable byte // 0x28: absent means 1
	SubIDAvailable       byte // 0x29: absent means 1
	SharedSubAvailable   byte // 0x2A: absent means 1
}

// Mark marks property id present, so that it is encoded even when its
// field holds the zero value (a Session Expiry Interval of 0 on DISCONNECT,
// Maximum QoS 0 on CONNACK, ...).
func (p *Properties) Mark(id PropertyID) {
	if id <= maxPropertyID && propTable[id].name != "" {
		p.present |= 1 << id
	}
}

// Unmark clears the mark set by Mark or by decoding. A property whose
// field is non-zero is still sent.
func (p *Properties) Unmark(id PropertyID) {
	if id <= maxPropertyID {
		p.present &^= 1 << id
	}
}

// Has reports whether property id is present: marked or non-zero.
func (p *Properties) Has(id PropertyID) bool { return id <= maxPropertyID && p.mask()&(1<<id) != 0 }

// IsZero reports whether no property is present.
func (p *Properties) IsZero() bool { return p.mask() == 0 }

// mask returns the set of present properties: marked or non-zero.
func (p *Properties) mask() uint64 {
	m := p.present
	set := func(ok bool, id PropertyID) {
		if ok {
			m |= 1 << id
		}
	}
	set(p.ContentType != "", PropContentType)
	set(p.ResponseTopic != "", PropResponseTopic)
	set(p.AssignedClientID != "", PropAssignedClientID)
	set(p.AuthMethod != "", PropAuthMethod)
	set(p.ResponseInfo != "", PropResponseInfo)
	set(p.ServerReference != "", PropServerReference)
	set(p.ReasonString != "", PropReasonString)
	set(len(p.CorrelationData) > 0, PropCorrelationData)
	set(len(p.SubscriptionIDs) > 0, PropSubscriptionID)
	set(len(p.AuthData) > 0, PropAuthData)
	set(len(p.User) > 0, PropUser)
	set(p.MessageExpiry != 0, PropMessageExpiry)
	set(p.SessionExpiry != 0, PropSessionExpiry)
	set(p.WillDelay != 0, PropWillDelay)
	set(p.MaximumPacketSize != 0, PropMaximumPacketSize)
	set(p.ServerKeepAlive != 0, PropServerKeepAlive)
	set(p.ReceiveMaximum != 0, PropReceiveMaximum)
	set(p.TopicAliasMaximum != 0, PropTopicAliasMaximum)
	set(p.TopicAlias != 0, PropTopicAlias)
	set(p.PayloadFormat != 0, PropPayloadFormat)
	set(p.RequestProblemInfo != 0, PropRequestProblemInfo)
	set(p.RequestResponseInfo != 0, PropRequestResponseInfo)
	set(p.MaximumQoS != 0, PropMaximumQoS)
	set(p.RetainAvailable != 0, PropRetainAvailable)
	set(p.WildcardSubAvailable != 0, PropWildcardSubAvailable)
	set(p.SubIDAvailable != 0, PropSubIDAvailable)
	set(p.SharedSubAvailable != 0, PropSharedSubAvailable)
	return m
}

// allowedMask[ctx] is the set of properties context ctx may carry.
var allowedMask = func() (a [willContext + 1]uint64) {
	for id, info := range propTable {
		for t := range a {
			if info.allowed&(1<<t) != 0 {
				a[t] |= 1 << id
			}
		}
	}
	return a
}()

// decode reads a property length and the properties of context ctx (a
// packet type or willContext).
func (p *Properties) decode(d *decoder, ctx Type) {
	n := int(d.vbi())
	if d.err != nil {
		return
	}
	if n > d.remaining() {
		d.short()
		return
	}
	end := d.off + n
	outer := d.b
	d.b = d.b[:end] // a property may not read past the property length
	defer func() { d.b = outer }()
	for d.err == nil && d.off < end {
		idv := d.vbi()
		if d.err != nil {
			return
		}
		// [v5 noid:prop-not-allowed] section 2.2.2.2: an identifier not valid
		// for the packet type is a Malformed Packet.
		if idv > maxPropertyID || propTable[idv].allowed&(1<<ctx) == 0 {
			d.fail(malformed(d.t, "v5 noid:prop-not-allowed", fmt.Sprintf("property 0x%02x not allowed in %s", idv, ctxName(ctx))))
			return
		}
		id := PropertyID(idv)
		bit := uint64(1) << id
		// [v5 noid:dup-prop] "It is a Protocol Error to include X more than
		// once"; User Property and, in PUBLISH, Subscription Identifier repeat.
		if p.present&bit != 0 && id != PropUser && !(id == PropSubscriptionID && ctx == PUBLISH) {
			d.fail(protoErr(d.t, "v5 noid:dup-prop", "property "+id.String()+" appears more than once"))
			return
		}
		p.present |= bit
		switch id {
		case PropPayloadFormat:
			p.PayloadFormat = d.u8()
			d.bool01(p.PayloadFormat, id)
		case PropMessageExpiry:
			p.MessageExpiry = d.u32()
		case PropContentType:
			p.ContentType = d.str() // [v5 MQTT-3.3.2-19]
		case PropResponseTopic:
			p.ResponseTopic = d.str() // [v5 MQTT-3.3.2-13]
			if d.err == nil && (p.ResponseTopic == "" || hasWildcard(p.ResponseTopic)) {
				// [v5 MQTT-3.3.2-14] a Response Topic is a valid Topic Name.
				d.fail(protoErr(d.t, "v5 MQTT-3.3.2-14", "response topic is empty or contains a wildcard"))
			}
		case PropCorrelationData:
			p.CorrelationData = d.bin()
		case PropSubscriptionID:
			x := d.vbi()
			if d.err == nil && x == 0 {
				// [v5 noid:subid-0] section 3.8.2.1.2: 0 is a Protocol Error.
				d.fail(protoErr(d.t, "v5 noid:subid-0", "subscription identifier 0"))
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, x)
		case PropSessionExpiry:
			p.SessionExpiry = d.u32()
		case PropAssignedClientID:
			p.AssignedClientID = d.str()
		case PropServerKeepAlive:
			p.ServerKeepAlive = d.u16()
		case PropAuthMethod:
			p.AuthMethod = d.str()
		case PropAuthData:
			p.AuthData = d.bin()
		case PropRequestProblemInfo:
			p.RequestProblemInfo = d.u8()
			d.bool01(p.RequestProblemInfo, id)
		case PropWillDelay:
			p.WillDelay = d.u32()
		case PropRequestResponseInfo:
			p.RequestResponseInfo = d.u8()
			d.bool01(p.RequestResponseInfo, id)
		case PropResponseInfo:
			p.ResponseInfo = d.str()
		case PropServerReference:
			p.ServerReference = d.str()
		case PropReasonString:
			p.ReasonString = d.str()
		case PropReceiveMaximum:
			p.ReceiveMaximum = d.u16()
			d.nonZero(uint32(p.ReceiveMaximum), id)
		case PropTopicAliasMaximum:
			p.TopicAliasMaximum = d.u16()
		case PropTopicAlias:
			p.TopicAlias = d.u16()
			if d.err == nil && p.TopicAlias == 0 {
				d.fail(&ProtocolError{Code: TopicAliasInvalid, Packet: d.t, Spec: "v5 MQTT-3.3.2-8", Msg: "topic alias 0"}) // [v5 MQTT-3.3.2-8], answered with 0x94 (section 3.3.2.3.4)
			}
		case PropMaximumQoS:
			p.MaximumQoS = d.u8()
			d.bool01(p.MaximumQoS, id)
		case PropRetainAvailable:
			p.RetainAvailable = d.u8()
			d.bool01(p.RetainAvailable, id)
		case PropUser:
			k := d.str() // [v5 MQTT-1.5.7-1]
			v := d.str()
			p.User = append(p.User, UserProperty{k, v})
		case PropMaximumPacketSize:
			p.MaximumPacketSize = d.u32()
			d.nonZero(p.MaximumPacketSize, id)
		case PropWildcardSubAvailable:
			p.WildcardSubAvailable = d.u8()
			d.bool01(p.WildcardSubAvailable, id)
		case PropSubIDAvailable:
			p.SubIDAvailable = d.u8()
			d.bool01(p.SubIDAvailable, id)
		case PropSharedSubAvailable:
			p.SharedSubAvailable = d.u8()
			d.bool01(p.SharedSubAvailable, id)
		}
	}
}

// authPair: Authentication Data without an Authentication Method is a
// Protocol Error [v5 noid:auth-data-no-method] (sections 3.1.2.11.10,
// 3.2.2.3.18, 3.15.2.2.3).
func (d *decoder) authPair(p *Properties) {
	if d.err == nil && p.present&(1<<PropAuthData) != 0 && p.present&(1<<PropAuthMethod) == 0 {
		d.fail(protoErr(d.t, "v5 noid:auth-data-no-method", "authentication data without an authentication method"))
	}
}

// bool01: byte properties other than 0 or 1 are a Protocol Error
// [v5 noid:prop-range] (sections 3.1.2.11.7, 3.2.2.3.4 and the others).
func (d *decoder) bool01(x byte, id PropertyID) {
	if d.err == nil && x > 1 {
		d.fail(protoErr(d.t, "v5 noid:prop-range", id.String()+" must be 0 or 1"))
	}
}

// nonZero: Receive Maximum and Maximum Packet Size of 0 are a Protocol
// Error [v5 noid:prop-range] (sections 3.1.2.11.3, 3.1.2.11.4).
func (d *decoder) nonZero(x uint32, id PropertyID) {
	if d.err == nil && x == 0 {
		d.fail(protoErr(d.t, "v5 noid:prop-range", id.String()+" must not be 0"))
	}
}

func ctxName(ctx Type) string {
	if ctx == willContext {
		return "will properties"
	}
	return ctx.String()
}

// appendProps appends the property length and the properties allowed in
// ctx. A packet with no properties still carries a property length of 0
// [v5 MQTT-2.2.2-1].
func (p *Properties) append(dst []byte, ctx Type, e *encoder) []byte {
	m := p.mask() & allowedMask[ctx]
	if m == 0 {
		return append(dst, 0)
	}
	dst, off := reserveVBI(dst)
	ok := func(id PropertyID) bool { return m&(1<<id) != 0 }
	if ok(PropPayloadFormat) {
		e.check(p.PayloadFormat <= 1, "payload format indicator must be 0 or 1")
		dst = append(dst, byte(PropPayloadFormat), p.PayloadFormat)
	}
	if ok(PropMessageExpiry) {
		dst = appendU32(append(dst, byte(PropMessageExpiry)), p.MessageExpiry)
	}
	if ok(PropContentType) {
		e.str(p.ContentType, "content type")
		dst = appendString(append(dst, byte(PropContentType)), p.ContentType)
	}
	if ok(PropResponseTopic) {
		e.str(p.ResponseTopic, "response topic")
		e.check(p.ResponseTopic != "" && !hasWildcard(p.ResponseTopic), "response topic must be a topic name without wildcards")
		dst = appendString(append(dst, byte(PropResponseTopic)), p.ResponseTopic)
	}
	if ok(PropCorrelationData) {
		e.bin(p.CorrelationData, "correlation data")
		dst = appendBinary(append(dst, byte(PropCorrelationData)), p.CorrelationData)
	}
	if ok(PropSubscriptionID) {
		e.check(ctx == PUBLISH || len(p.SubscriptionIDs) == 1, "SUBSCRIBE carries at most one subscription identifier")
		for _, id := range p.SubscriptionIDs {
			e.check(id > 0 && id <= MaxRemainingLength, "subscription identifier must be 1 to 268435455")
			dst = appendVBI(append(dst, byte(PropSubscriptionID)), id)
		}
	}
	if ok(PropSessionExpiry) {
		dst = appendU32(append(dst, byte(PropSessionExpiry)), p.SessionExpiry)
	}
	if ok(PropAssignedClientID) {
		e.str(p.AssignedClientID, "assigned client identifier")
		dst = appendString(append(dst, byte(PropAssignedClientID)), p.AssignedClientID)
	}
	if ok(PropServerKeepAlive) {
		dst = appendU16(append(dst, byte(PropServerKeepAlive)), p.ServerKeepAlive)
	}
	if ok(PropAuthMethod) {
		e.str(p.AuthMethod, "authentication method")
		dst = appendString(append(dst, byte(PropAuthMethod)), p.AuthMethod)
	}
	if ok(PropAuthData) {
		e.bin(p.AuthData, "authentication data")
		dst = appendBinary(append(dst, byte(PropAuthData)), p.AuthData)
	}
	if ok(PropRequestProblemInfo) {
		e.check(p.RequestProblemInfo <= 1, "request problem information must be 0 or 1")
		dst = append(dst, byte(PropRequestProblemInfo), p.RequestProblemInfo)
	}
	if ok(PropWillDelay) {
		dst = appendU32(append(dst, byte(PropWillDelay)), p.WillDelay)
	}
	if ok(PropRequestResponseInfo) {
		e.check(p.RequestResponseInfo <= 1, "request response information must be 0 or 1")
		dst = append(dst, byte(PropRequestResponseInfo), p.RequestResponseInfo)
	}
	if ok(PropResponseInfo) {
		e.str(p.ResponseInfo, "response information")
		dst = appendString(append(dst, byte(PropResponseInfo)), p.ResponseInfo)
	}
	if ok(PropServerReference) {
		e.str(p.ServerReference, "server reference")
		dst = appendString(append(dst, byte(PropServerReference)), p.ServerReference)
	}
	if ok(PropReasonString) {
		e.str(p.ReasonString, "reason string")
		dst = appendString(append(dst, byte(PropReasonString)), p.ReasonString)
	}
	if ok(PropReceiveMaximum) {
		e.check(p.ReceiveMaximum != 0, "receive maximum must not be 0")
		dst = appendU16(append(dst, byte(PropReceiveMaximum)), p.ReceiveMaximum)
	}
	if ok(PropTopicAliasMaximum) {
		dst = appendU16(append(dst, byte(PropTopicAliasMaximum)), p.TopicAliasMaximum)
	}
	if ok(PropTopicAlias) {
		e.check(p.TopicAlias != 0, "topic alias must not be 0") // [v5 MQTT-3.3.2-8]
		dst = appendU16(append(dst, byte(PropTopicAlias)), p.TopicAlias)
	}
	if ok(PropMaximumQoS) {
		e.check(p.MaximumQoS <= 1, "maximum QoS must be 0 or 1")
		dst = append(dst, byte(PropMaximumQoS), p.MaximumQoS)
	}
	if ok(PropRetainAvailable) {
		e.check(p.RetainAvailable <= 1, "retain available must be 0 or 1")
		dst = append(dst, byte(PropRetainAvailable), p.RetainAvailable)
	}
	if ok(PropUser) {
		for _, u := range p.User {
			e.str(u.Key, "user property name")
			e.str(u.Value, "user property value")
			dst = appendString(appendString(append(dst, byte(PropUser)), u.Key), u.Value)
		}
	}
	if ok(PropMaximumPacketSize) {
		e.check(p.MaximumPacketSize != 0, "maximum packet size must not be 0")
		dst = appendU32(append(dst, byte(PropMaximumPacketSize)), p.MaximumPacketSize)
	}
	if ok(PropWildcardSubAvailable) {
		e.check(p.WildcardSubAvailable <= 1, "wildcard subscription available must be 0 or 1")
		dst = append(dst, byte(PropWildcardSubAvailable), p.WildcardSubAvailable)
	}
	if ok(PropSubIDAvailable) {
		e.check(p.SubIDAvailable <= 1, "subscription identifier available must be 0 or 1")
		dst = append(dst, byte(PropSubIDAvailable), p.SubIDAvailable)
	}
	if ok(PropSharedSubAvailable) {
		e.check(p.SharedSubAvailable <= 1, "shared subscription available must be 0 or 1")
		dst = append(dst, byte(PropSharedSubAvailable), p.SharedSubAvailable)
	}
	return fillVBI(dst, off)
}

// String lists the present properties, e.g. "{MessageExpiry:60 User:[a=b]}".
func (p *Properties) String() string {
	if p.IsZero() {
		return "{}"
	}
	var b strings.Builder
	b.WriteByte('{')
	sep := func() {
		if b.Len() > 1 {
			b.WriteByte(' ')
		}
	}
	m := p.mask()
	for id := PropertyID(1); id <= maxPropertyID; id++ {
		if m&(1<<id) == 0 {
			continue
		}
		sep()
		b.WriteString(id.String())
		b.WriteByte(':')
		b.WriteString(p.valueString(id))
	}
	b.WriteByte('}')
	return b.String()
}

func (p *Properties) valueString(id PropertyID) string {
	switch id {
	case PropPayloadFormat:
		return strconv.Itoa(int(p.PayloadFormat))
	case PropMessageExpiry:
		return strconv.FormatUint(uint64(p.MessageExpiry), 10)
	case PropContentType:
		return strconv.Quote(p.ContentType)
	case PropResponseTopic:
		return strconv.Quote(p.ResponseTopic)
	case PropCorrelationData:
		return fmt.Sprintf("%q", p.CorrelationData)
	case PropSubscriptionID:
		return fmt.Sprint(p.SubscriptionIDs)
	case PropSessionExpiry:
		return strconv.FormatUint(uint64(p.SessionExpiry), 10)
	case PropAssignedClientID:
		return strconv.Quote(p.AssignedClientID)
	case PropServerKeepAlive:
		return strconv.Itoa(int(p.ServerKeepAlive))
	case PropAuthMethod:
		return strconv.Quote(p.AuthMethod)
	case PropAuthData:
		return strconv.Itoa(len(p.AuthData)) + "B"
	case PropRequestProblemInfo:
		return strconv.Itoa(int(p.RequestProblemInfo))
	case PropWillDelay:
		return strconv.FormatUint(uint64(p.WillDelay), 10)
	case PropRequestResponseInfo:
		return strconv.Itoa(int(p.RequestResponseInfo))
	case PropResponseInfo:
		return strconv.Quote(p.ResponseInfo)
	case PropServerReference:
		return strconv.Quote(p.ServerReference)
	case PropReasonString:
		return strconv.Quote(p.ReasonString)
	case PropReceiveMaximum:
		return strconv.Itoa(int(p.ReceiveMaximum))
	case PropTopicAliasMaximum:
		return strconv.Itoa(int(p.TopicAliasMaximum))
	case PropTopicAlias:
		return strconv.Itoa(int(p.TopicAlias))
	case PropMaximumQoS:
		return strconv.Itoa(int(p.MaximumQoS))
	case PropRetainAvailable:
		return strconv.Itoa(int(p.RetainAvailable))
	case PropUser:
		parts := make([]string, len(p.User))
		for i, u := range p.User {
			parts[i] = strconv.Quote(u.Key) + "=" + strconv.Quote(u.Value)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case PropMaximumPacketSize:
		return strconv.FormatUint(uint64(p.MaximumPacketSize), 10)
	case PropWildcardSubAvailable:
		return strconv.Itoa(int(p.WildcardSubAvailable))
	case PropSubIDAvailable:
		return strconv.Itoa(int(p.SubIDAvailable))
	case PropSharedSubAvailable:
		return strconv.Itoa(int(p.SharedSubAvailable))
	}
	return ""
}
