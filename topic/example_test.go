package topic_test

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ternmq/tern/topic"
)

func ExampleMatch() {
	fmt.Println(topic.Match("sport/tennis/player1/#", "sport/tennis/player1"))
	fmt.Println(topic.Match("sport/+", "sport"))
	fmt.Println(topic.Match("+/+", "/finance"))
	fmt.Println(topic.Match("#", "$SYS/broker/uptime"))
	fmt.Println(topic.Match("$SYS/#", "$SYS/broker/uptime"))
	// Output:
	// true
	// false
	// true
	// false
	// true
}

func ExampleValidateFilter() {
	for _, f := range []string{"sport/tennis/#", "sport/tennis#", "$share/g/#", "$share/a+b/x"} {
		err := topic.ValidateFilter(f)
		fmt.Println(err, errors.Is(err, topic.ErrBadWildcard))
	}
	// Output:
	// <nil> false
	// topic: invalid filter "sport/tennis#": '#' must be alone in the last level [MQTT-4.7.1-1] true
	// <nil> false
	// topic: invalid filter "$share/a+b/x": ShareName must not contain '+' or '#' [MQTT-4.8.2-2] false
}

func ExampleParseShare() {
	group, inner, shared, err := topic.ParseShare("$share/consumers/sport/tennis/+")
	fmt.Println(group, inner, shared, err)
	group, inner, shared, err = topic.ParseShare("sport/#")
	fmt.Printf("%q %q %v %v\n", group, inner, shared, err)
	// Output:
	// consumers sport/tennis/+ true <nil>
	// "" "sport/#" false <nil>
}

func ExampleTrie() {
	type options struct{ QoS byte }
	subs := topic.NewTrie[string, options]()
	subs.Add("sport/tennis/+", "alice", options{QoS: 1})
	subs.Add("sport/#", "bob", options{QoS: 0})
	subs.Add("#", "carol", options{QoS: 2})
	subs.Add("$SYS/#", "monitor", options{QoS: 0})

	for _, name := range []string{"sport/tennis/player1", "$SYS/broker/uptime"} {
		var got []string
		subs.Match(name, func(filter, client string, o options) bool {
			got = append(got, fmt.Sprintf("%s(%s,qos%d)", client, filter, o.QoS))
			return true // keep going
		})
		sort.Strings(got)
		fmt.Println(name, got)
	}
	subs.Remove("#", "carol")
	fmt.Println(subs.Len())
	// Output:
	// sport/tennis/player1 [alice(sport/tennis/+,qos1) bob(sport/#,qos0) carol(#,qos2)]
	// $SYS/broker/uptime [monitor($SYS/#,qos0)]
	// 3
}
