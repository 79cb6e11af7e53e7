// Package session holds the MQTT session state that the broker and the
// client share, so each piece of protocol logic exists once: packet
// identifier allocation first.
package session
