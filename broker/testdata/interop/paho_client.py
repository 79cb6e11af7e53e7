#!/usr/bin/python3
"""Eclipse Paho (Python, paho-mqtt 1.6) client driven by the Tern interop tests.

Run it with Debian's /usr/bin/python3 (python3-paho-mqtt). Every event is
printed to stdout as one JSON object per line, for instance

    {"event": "connected", "rc": 0, "session_present": 0}
    {"event": "subscribed", "granted": [1]}
    {"event": "message", "topic": "a/b", "payload": "m0", "qos": 1, "retain": 0}
    {"event": "published", "count": 3}
    {"event": "done"}

Roles:
  sub   connect, subscribe to --topic at --qos (unless --no-subscribe), print
        --count messages, disconnect cleanly, exit 0. With --count 0 it
        disconnects as soon as the subscription is acknowledged (to leave a
        persistent session behind).
  pub   connect, publish --count messages "<prefix><i>" (--empty: "") to
        --topic at --qos (with --retain), wait until each is acknowledged, disconnect, exit 0.
  hold  connect (with the will given by --will-*), then, per --then:
          disconnect  send DISCONNECT and exit 0 (the will must not fire);
          die         close the socket without DISCONNECT and exit 1 at once;
          wait        stay connected until killed or --timeout.

Exit status: 0 done, 1 "die", 2 timeout, 3 connection refused.
"""

import argparse
import json
import os
import sys
import time

import paho.mqtt.client as mqtt

PROTOCOLS = {"3.1": mqtt.MQTTv31, "3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}


def emit(**kv):
    sys.stdout.write(json.dumps(kv, sort_keys=True) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--protocol", choices=sorted(PROTOCOLS), default="3.1.1")
    ap.add_argument("--role", choices=["sub", "pub", "hold"], required=True)
    ap.add_argument("--id", default="")
    ap.add_argument("--persistent", action="store_true",
                    help="clean session 0 (MQTT 5: clean start 0, session expiry 300 s)")
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--topic", default="interop/test")
    ap.add_argument("--qos", type=int, default=0, choices=[0, 1, 2])
    ap.add_argument("--retain", action="store_true")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--prefix", default="m")
    ap.add_argument("--empty", action="store_true",
                    help="publish empty payloads (with --retain: delete the retained message)")
    ap.add_argument("--no-subscribe", action="store_true")
    ap.add_argument("--will-topic")
    ap.add_argument("--will-payload", default="")
    ap.add_argument("--will-qos", type=int, default=0, choices=[0, 1, 2])
    ap.add_argument("--will-retain", action="store_true")
    ap.add_argument("--then", choices=["disconnect", "die", "wait"], default="disconnect")
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()

    proto = PROTOCOLS[a.protocol]
    v5 = proto == mqtt.MQTTv5
    if v5:
        c = mqtt.Client(client_id=a.id, protocol=proto)
    else:
        c = mqtt.Client(client_id=a.id, clean_session=not a.persistent, protocol=proto)
    if a.username is not None:
        c.username_pw_set(a.username, a.password)
    if a.will_topic is not None:
        c.will_set(a.will_topic, a.will_payload, a.will_qos, a.will_retain)

    st = {"connected": False, "refused": None, "subscribed": False,
          "received": 0, "disconnected": False}

    def on_connect(client, userdata, flags, rc, properties=None):
        rc = int(rc.value if hasattr(rc, "value") else rc)
        emit(event="connected", rc=rc, session_present=int(flags.get("session present", 0)))
        if rc != 0:
            st["refused"] = rc
            return
        st["connected"] = True
        if a.role == "sub":
            if a.no_subscribe:
                st["subscribed"] = True
            else:
                client.subscribe(a.topic, a.qos)

    def on_subscribe(client, userdata, mid, granted, properties=None):
        granted = [int(g.value if hasattr(g, "value") else g) for g in granted]
        emit(event="subscribed", granted=granted)
        st["subscribed"] = True

    def on_message(client, userdata, msg):
        emit(event="message", topic=msg.topic,
             payload=msg.payload.decode("utf-8", "replace"),
             qos=msg.qos, retain=int(msg.retain))
        st["received"] += 1

    def on_disconnect(client, userdata, rc, properties=None):
        st["disconnected"] = True

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.on_disconnect = on_disconnect

    deadline = time.monotonic() + a.timeout

    def pump(until):
        while not until():
            if time.monotonic() > deadline:
                emit(event="timeout", received=st["received"])
                os._exit(2)
            c.loop(timeout=0.05)

    if v5:
        props = None
        if a.persistent:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
        c.connect(a.host, a.port, keepalive=30, clean_start=not a.persistent, properties=props)
    else:
        c.connect(a.host, a.port, keepalive=30)
    pump(lambda: st["connected"] or st["refused"] is not None or st["disconnected"])
    if not st["connected"]:
        emit(event="refused", rc=st["refused"])
        sys.exit(3)

    if a.role == "sub":
        pump(lambda: st["subscribed"])
        pump(lambda: st["received"] >= a.count)
    elif a.role == "pub":
        infos = []
        for i in range(a.count):
            payload = b"" if a.empty else "%s%d" % (a.prefix, i)
            infos.append(c.publish(a.topic, payload, a.qos, a.retain))
        pump(lambda: all(m.is_published() for m in infos))
        emit(event="published", count=len(infos))
    else:
        if a.then == "die":
            # Gone without DISCONNECT: the broker must publish the will.
            emit(event="dying")
            c.socket().close()
            os._exit(1)
        if a.then == "wait":
            emit(event="waiting")
            pump(lambda: False)

    c.disconnect()
    pump(lambda: st["disconnected"])
    emit(event="done")
    sys.exit(0)


if __name__ == "__main__":
    main()
