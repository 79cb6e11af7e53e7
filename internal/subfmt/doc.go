// Package subfmt prints received MQTT messages exactly as mosquitto_sub
// 2.0 prints them: its -F format language, -v, -N and --pretty.
package subfmt
