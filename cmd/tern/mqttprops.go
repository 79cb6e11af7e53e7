package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ternmq/tern/packet"
)

// This file reads -D / --property, mosquitto_pub's way of setting MQTT 5
// properties: "-D command property value", or for a user property
// "-D command user-property name value". The names of commands, properties
// and their types are Mosquitto's (mosquitto_string_to_command,
// mosquitto_string_to_property_info in libmosquitto 2.0.11).

// propType is how a -D value is read: the MQTT 5 data type of the property.
type propType int

const (
	propByte   propType = iota // 8-bit unsigned integer
	propUint16                 // 16-bit unsigned integer
	propUint32                 // 32-bit unsigned integer
	propVarint                 // variable byte integer (up to 268,435,455)
	propString                 // UTF-8 string
	propBinary                 // binary data, given as a string
	propPair                   // UTF-8 string pair: two arguments
)

func (t propType) String() string {
	return [...]string{"8-bit unsigned integer", "16-bit unsigned integer", "32-bit unsigned integer",
		"variable byte integer", "UTF-8 string", "binary data", "UTF-8 string pair"}[t]
}

// propDef is one property -D knows, by Mosquitto's name.
type propDef struct {
	name string
	id   packet.PropertyID
	typ  propType
}

// propDefs are every MQTT 5 property, named as Mosquitto names them.
var propDefs = []propDef{
	{"payload-format-indicator", packet.PropPayloadFormat, propByte},
	{"message-expiry-interval", packet.PropMessageExpiry, propUint32},
	{"content-type", packet.PropContentType, propString},
	{"response-topic", packet.PropResponseTopic, propString},
	{"correlation-data", packet.PropCorrelationData, propBinary},
	{"subscription-identifier", packet.PropSubscriptionID, propVarint},
	{"session-expiry-interval", packet.PropSessionExpiry, propUint32},
	{"assigned-client-identifier", packet.PropAssignedClientID, propString},
	{"server-keep-alive", packet.PropServerKeepAlive, propUint16},
	{"authentication-method", packet.PropAuthMethod, propString},
	{"authentication-data", packet.PropAuthData, propBinary},
	{"request-problem-information", packet.PropRequestProblemInfo, propByte},
	{"will-delay-interval", packet.PropWillDelay, propUint32},
	{"request-response-information", packet.PropRequestResponseInfo, propByte},
	{"response-information", packet.PropResponseInfo, propString},
	{"server-reference", packet.PropServerReference, propString},
	{"reason-string", packet.PropReasonString, propString},
	{"receive-maximum", packet.PropReceiveMaximum, propUint16},
	{"topic-alias-maximum", packet.PropTopicAliasMaximum, propUint16},
	{"topic-alias", packet.PropTopicAlias, propUint16},
	{"maximum-qos", packet.PropMaximumQoS, propByte},
	{"retain-available", packet.PropRetainAvailable, propByte},
	{"user-property", packet.PropUser, propPair},
	{"maximum-packet-size", packet.PropMaximumPacketSize, propUint32},
	{"wildcard-subscription-available", packet.PropWildcardSubAvailable, propByte},
	{"subscription-identifier-available", packet.PropSubIDAvailable, propByte},
	{"shared-subscription-available", packet.PropSharedSubAvailable, propByte},
}

func lookupProp(name string) (propDef, bool) {
	for _, d := range propDefs {
		if d.name == name {
			return d, true
		}
	}
	return propDef{}, false
}

// propCmd is a -D command: the packet (or the will) the property goes in.
type propCmd int

const (
	cmdConnect propCmd = iota
	cmdPublish
	cmdSubscribe
	cmdUnsubscribe
	cmdDisconnect
	cmdWill
	numPropCmds
)

// propCmdNames are the commands -D sets properties of.
var propCmdNames = [numPropCmds]string{"connect", "publish", "subscribe", "unsubscribe", "disconnect", "will"}

// propCmdReadOnly are the commands Mosquitto knows but whose packets the
// client does not send with properties of the user's (the server sends
// them, or the library builds them).
var propCmdReadOnly = []string{"connack", "puback", "pubrec", "pubrel", "pubcomp", "suback", "unsuback", "auth"}

// propAllowed lists, per command, the properties MQTT 5 allows in the
// packet (for will: in the will properties of CONNECT, section 3.1.3.2).
var propAllowed = [numPropCmds][]packet.PropertyID{
	cmdConnect: {packet.PropSessionExpiry, packet.PropAuthMethod, packet.PropAuthData, packet.PropRequestProblemInfo,
		packet.PropRequestResponseInfo, packet.PropReceiveMaximum, packet.PropTopicAliasMaximum, packet.PropUser,
		packet.PropMaximumPacketSize},
	cmdPublish: {packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType, packet.PropResponseTopic,
		packet.PropCorrelationData, packet.PropSubscriptionID, packet.PropTopicAlias, packet.PropUser},
	cmdSubscribe:   {packet.PropSubscriptionID, packet.PropUser},
	cmdUnsubscribe: {packet.PropUser},
	cmdDisconnect:  {packet.PropSessionExpiry, packet.PropReasonString, packet.PropServerReference, packet.PropUser},
	cmdWill: {packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType, packet.PropResponseTopic,
		packet.PropCorrelationData, packet.PropWillDelay, packet.PropUser},
}

func (c propCmd) allows(id packet.PropertyID) bool {
	for _, a := range propAllowed[c] {
		if a == id {
			return true
		}
	}
	return false
}

// propNamesFor returns the names of the properties command c takes, for
// error messages and completion.
func propNamesFor(c propCmd) []string {
	var names []string
	for _, d := range propDefs {
		if c.allows(d.id) && !(c == cmdPublish && d.id == packet.PropSubscriptionID) {
			names = append(names, d.name)
		}
	}
	return names
}

// propArgCount returns how many arguments follow -D for the given
// arguments: 4 for a user property, 3 otherwise.
func propArgCount(args []string) int {
	if len(args) >= 2 && args[1] == "user-property" {
		return 4
	}
	return 3
}

// mqttProps holds the properties -D set, one Properties per command.
type mqttProps [numPropCmds]packet.Properties

// add reads one -D: args are the command, the property name and its value
// (name and value for a user property).
func (p *mqttProps) add(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("-D %s: give a command, a property and a value, as in -D publish content-type text/plain", strings.Join(args, " "))
	}
	cmdName, name := args[0], args[1]
	cmd := propCmd(-1)
	for i, n := range propCmdNames {
		if n == cmdName {
			cmd = propCmd(i)
		}
	}
	if cmd < 0 {
		for _, n := range propCmdReadOnly {
			if n == cmdName {
				return fmt.Errorf("-D %s: the client sets no properties of %s; use one of %s", cmdName, strings.ToUpper(cmdName), strings.Join(propCmdNames[:], ", "))
			}
		}
		return fmt.Errorf("-D %s: unknown command %q; use one of %s", cmdName, cmdName, strings.Join(propCmdNames[:], ", "))
	}
	def, ok := lookupProp(name)
	if !ok {
		return fmt.Errorf("-D %s %s: unknown property %q; %s takes %s", cmdName, name, name, cmdName, strings.Join(propNamesFor(cmd), ", "))
	}
	if !cmd.allows(def.id) {
		return fmt.Errorf("-D %s %s: %s is not allowed in %s; %s takes %s", cmdName, name, name, cmdName, cmdName, strings.Join(propNamesFor(cmd), ", "))
	}
	if cmd == cmdPublish && def.id == packet.PropSubscriptionID {
		// [v5 MQTT-3.3.4-6] a client's PUBLISH carries no Subscription Identifier.
		return fmt.Errorf("-D publish subscription-identifier: a client's PUBLISH carries no subscription identifier (MQTT 5 section 3.3.4); set it on the subscription: -D subscribe subscription-identifier N")
	}
	value := args[2]
	where := "-D " + strings.Join(args, " ")
	if def.typ == propPair {
		if len(args) < 4 {
			return fmt.Errorf("-D %s user-property %s: a user property takes a name and a value, as in -D %s user-property unit celsius", cmdName, value, cmdName)
		}
		key, val := args[2], args[3]
		if !validMQTTString(key) || !validMQTTString(val) {
			// [v5 MQTT-1.5.7-1] both halves of a string pair are UTF-8 strings.
			return fmt.Errorf("%s: the name and value must be UTF-8 without U+0000, at most 65535 bytes", where)
		}
		p[cmd].User = append(p[cmd].User, packet.UserProperty{Key: key, Value: val})
		p[cmd].Mark(def.id)
		return nil
	}
	if p[cmd].Has(def.id) {
		return fmt.Errorf("%s: %s given twice for %s; it may appear once", where, name, cmdName)
	}
	props := &p[cmd]
	switch def.typ {
	case propByte, propUint16, propUint32, propVarint:
		bits := map[propType]int{propByte: 8, propUint16: 16, propUint32: 32, propVarint: 32}[def.typ]
		n, err := strconv.ParseUint(value, 0, bits)
		max := uint64(1)<<bits - 1
		if def.typ == propVarint {
			max = 268_435_455
		}
		if err != nil || n > max {
			return fmt.Errorf("%s: %s is a %s, 0 to %d", where, name, def.typ, max)
		}
		if err := setNumProp(props, def, n); err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
	case propString:
		if !validMQTTString(value) {
			// [v5 MQTT-1.5.4-1] [v5 MQTT-1.5.4-2]
			return fmt.Errorf("%s: %s must be UTF-8 without U+0000, at most 65535 bytes", where, name)
		}
		switch def.id {
		case packet.PropContentType:
			props.ContentType = value
		case packet.PropResponseTopic:
			if strings.ContainsAny(value, "+#") || value == "" {
				// [v5 MQTT-3.3.2-14] no wildcards in a Response Topic.
				return fmt.Errorf("%s: a response topic is a topic name, not empty and without + or #", where)
			}
			props.ResponseTopic = value
		case packet.PropAuthMethod:
			props.AuthMethod = value
		case packet.PropReasonString:
			props.ReasonString = value
		case packet.PropServerReference:
			props.ServerReference = value
		}
	case propBinary:
		if len(value) > 65535 {
			return fmt.Errorf("%s: %s is at most 65535 bytes", where, name)
		}
		switch def.id {
		case packet.PropCorrelationData:
			props.CorrelationData = []byte(value)
		case packet.PropAuthData:
			props.AuthData = []byte(value)
		}
	}
	props.Mark(def.id)
	return nil
}

// setNumProp sets an integer property, refusing the values MQTT 5 makes a
// Protocol Error.
func setNumProp(p *packet.Properties, def propDef, n uint64) error {
	switch def.id {
	case packet.PropPayloadFormat:
		if n > 1 {
			return fmt.Errorf("payload-format-indicator is 0 (bytes) or 1 (UTF-8)")
		}
		p.PayloadFormat = byte(n)
	case packet.PropRequestProblemInfo, packet.PropRequestResponseInfo:
		if n > 1 {
			return fmt.Errorf("%s is 0 or 1", def.name)
		}
		if def.id == packet.PropRequestProblemInfo {
			p.RequestProblemInfo = byte(n)
		} else {
			p.RequestResponseInfo = byte(n)
		}
	case packet.PropMessageExpiry:
		p.MessageExpiry = uint32(n)
	case packet.PropSessionExpiry:
		p.SessionExpiry = uint32(n)
	case packet.PropWillDelay:
		p.WillDelay = uint32(n)
	case packet.PropMaximumPacketSize:
		if n == 0 {
			return fmt.Errorf("maximum-packet-size 0 is a protocol error; give at least 1")
		}
		p.MaximumPacketSize = uint32(n)
	case packet.PropReceiveMaximum:
		if n == 0 {
			return fmt.Errorf("receive-maximum 0 is a protocol error; give 1 to 65535")
		}
		p.ReceiveMaximum = uint16(n)
	case packet.PropTopicAliasMaximum:
		p.TopicAliasMaximum = uint16(n)
	case packet.PropTopicAlias:
		if n == 0 {
			return fmt.Errorf("topic-alias 0 is a protocol error; give 1 to 65535")
		}
		p.TopicAlias = uint16(n)
	case packet.PropSubscriptionID:
		if n == 0 {
			return fmt.Errorf("subscription-identifier 0 is a protocol error; give 1 to 268435455")
		}
		p.SubscriptionIDs = []uint32{uint32(n)}
	default:
		return fmt.Errorf("%s cannot be set", def.name)
	}
	return nil
}

// validMQTTString reports whether s can be sent as an MQTT UTF-8 string.
func validMQTTString(s string) bool { return packet.ValidUTF8String(s) }
