#!/usr/bin/python3
"""Eclipse Paho (Python, paho-mqtt 1.6) MQTT 5 client driven by the Tern interop tests.

Run it with Debian's /usr/bin/python3 (python3-paho-mqtt). Where
paho_client.py runs one fixed role, this client runs a list of steps, so
that one process can subscribe with options, publish with properties,
answer requests and report everything it saw:

    paho5_client.py --port P [--protocol 5|3.1.1] [--id ID] [--clean-start 0|1]
        [--connect-props JSON] [--will JSON] [--steps JSON] [--timeout S]

--connect-props are CONNECT properties; --will is {"topic": .., "payload":
.., "qos": .., "retain": .., "props": {..}}. --steps is a JSON array run in
order once connected:

  {"op": "sub", "subs": [{"topic": "a/#", "qos": 1, "nl": false, "rap": false, "rh": 0}], "props": {..}}
      one SUBSCRIBE with every filter; wait for the SUBACK
  {"op": "pub", "topic": "a/b", "payload": "m" | "payload_hex": "00ff", "count": 1,
   "qos": 1, "retain": false, "props": {..}}
      publish count messages (payload + index when count > 1); wait until
      each is acknowledged
  {"op": "recv", "count": N}
      wait until N messages have been received in all
  {"op": "until", "topic": T, "payload": P}
      wait until a message with this topic and payload has been received
  {"op": "reply", "count": N}
      wait until N messages have been received, then answer each that has
      a Response Topic: payload "re:" + payload, its Correlation Data, its QoS
  {"op": "disconnect", "rc": 0, "props": {..}}
      DISCONNECT with reason code rc; exit 0
  {"op": "die"}   close the socket without DISCONNECT; exit 1
  {"op": "hold"}  wait until the server ends the connection; exit 0

After the last step the client disconnects normally. In any string of a
step, ${CID} is replaced by the client identifier (the assigned one, if
the server assigned it) and ${RI} by the CONNACK's Response Information.

Properties are given and reported with Paho's names (ContentType,
UserProperty, ...). UserProperty is a list of [name, value] pairs in wire
order, CorrelationData and AuthenticationData are hex strings,
SubscriptionIdentifier is a list. Every event is one JSON line:

    {"event": "connected", "rc": 0, "session_present": 0, "props": {..}}
    {"event": "refused", "rc": 135, "props": {..}}
    {"event": "subscribed", "reasons": [1, 1]}
    {"event": "message", "topic": .., "payload": .., "payload_hex": .., "qos": 1, "retain": 0, "dup": 0, "props": {..}}
    {"event": "published", "count": 3}
    {"event": "disconnected", "rc": 142, "props": {..}}
    {"event": "done"}

Exit status: 0 done, 1 "die", 2 timeout, 3 connection refused, 4 a step failed.
"""

import argparse
import json
import os
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes
from paho.mqtt.subscribeoptions import SubscribeOptions

PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
BINARY = ("CorrelationData", "AuthenticationData")


def emit(**kv):
    sys.stdout.write(json.dumps(kv, sort_keys=True) + "\n")
    sys.stdout.flush()


def props_in(packet_type, d):
    """JSON properties -> a Paho Properties object (None when empty)."""
    if not d:
        return None
    p = Properties(packet_type)
    for name, value in d.items():
        if name in BINARY:
            value = bytes.fromhex(value)
        elif name == "UserProperty":
            value = [tuple(kv) for kv in value]
        setattr(p, name, value)
    return p


def props_out(p):
    """A Paho Properties object -> JSON properties."""
    out = {}
    if p is None:
        return out
    for name in p.names:
        name = name.replace(" ", "")
        if not hasattr(p, name):
            continue
        value = getattr(p, name)
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).hex()
        elif name == "UserProperty":
            value = [list(kv) for kv in value]
        out[name] = value
    return out


def code(rc):
    return int(rc.value if hasattr(rc, "value") else rc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--protocol", choices=sorted(PROTOCOLS), default="5")
    ap.add_argument("--id", default="")
    ap.add_argument("--clean-start", type=int, default=1, choices=[0, 1])
    ap.add_argument("--connect-props", default="{}")
    ap.add_argument("--will")
    ap.add_argument("--steps", default="[]")
    ap.add_argument("--timeout", type=float, default=15.0)
    a = ap.parse_args()

    proto = PROTOCOLS[a.protocol]
    v5 = proto == mqtt.MQTTv5
    if v5:
        c = mqtt.Client(client_id=a.id, protocol=proto)
    else:
        c = mqtt.Client(client_id=a.id, clean_session=bool(a.clean_start), protocol=proto)
    if a.will:
        w = json.loads(a.will)
        c.will_set(w["topic"], w.get("payload", ""), w.get("qos", 0), w.get("retain", False),
                   properties=props_in(PacketTypes.WILLMESSAGE, w.get("props")) if v5 else None)

    st = {"connected": False, "refused": None, "closed": False, "suback": None,
          "messages": [], "cid": a.id, "ri": ""}

    def on_connect(client, userdata, flags, rc, properties=None):
        rc = code(rc)
        po = props_out(properties)
        if rc != 0:
            st["refused"] = rc
            emit(event="refused", rc=rc, props=po)
            return
        st["connected"] = True
        st["cid"] = po.get("AssignedClientIdentifier", a.id)
        st["ri"] = po.get("ResponseInformation", "")
        emit(event="connected", rc=rc, session_present=int(flags.get("session present", 0)), props=po)

    def on_subscribe(client, userdata, mid, granted, properties=None):
        st["suback"] = [code(g) for g in granted]

    def on_message(client, userdata, msg):
        po = props_out(getattr(msg, "properties", None)) if v5 else {}
        emit(event="message", topic=msg.topic, payload=msg.payload.decode("utf-8", "replace"),
             payload_hex=msg.payload.hex(), qos=msg.qos, retain=int(msg.retain), dup=int(msg.dup), props=po)
        st["messages"].append((msg.topic, msg.payload, msg.qos, po))

    def on_disconnect(client, userdata, rc, properties=None):
        if st["connected"] and not st["closed"]:
            emit(event="disconnected", rc=code(rc), props=props_out(properties))
        st["closed"] = True

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.on_disconnect = on_disconnect

    deadline = time.monotonic() + a.timeout

    def pump(until, what):
        while not until():
            if time.monotonic() > deadline:
                emit(event="timeout", waiting_for=what, received=len(st["messages"]))
                os._exit(2)
            if st["closed"] and not until():
                emit(event="error", message="connection closed while waiting for " + what)
                sys.exit(4)
            c.loop(timeout=0.05)

    def subst(v):
        if isinstance(v, str):
            return v.replace("${CID}", st["cid"]).replace("${RI}", st["ri"])
        if isinstance(v, list):
            return [subst(x) for x in v]
        if isinstance(v, dict):
            return {k: subst(x) for k, x in v.items()}
        return v

    def publish_all(msgs):
        infos = [c.publish(*m) for m in msgs]
        pump(lambda: all(i.is_published() for i in infos), "acknowledgements")
        emit(event="published", count=len(infos))

    connect_props = props_in(PacketTypes.CONNECT, json.loads(a.connect_props)) if v5 else None
    if v5:
        c.connect(a.host, a.port, keepalive=30, clean_start=bool(a.clean_start), properties=connect_props)
    else:
        c.connect(a.host, a.port, keepalive=30)
    pump(lambda: st["connected"] or st["refused"] is not None or st["closed"], "CONNACK")
    if not st["connected"]:
        if st["refused"] is None:
            emit(event="refused", rc=-1, props={})
        sys.exit(3)

    steps = json.loads(a.steps)
    if not steps or steps[-1].get("op") not in ("disconnect", "die", "hold"):
        steps.append({"op": "disconnect", "rc": 0})
    for step in steps:
        step = subst(step)
        op = step["op"]
        if op == "sub":
            subs = []
            for s in step["subs"]:
                if v5:
                    subs.append((s["topic"], SubscribeOptions(qos=s.get("qos", 0), noLocal=s.get("nl", False),
                                                              retainAsPublished=s.get("rap", False),
                                                              retainHandling=s.get("rh", 0))))
                else:
                    subs.append((s["topic"], s.get("qos", 0)))
            st["suback"] = None
            c.subscribe(subs, properties=props_in(PacketTypes.SUBSCRIBE, step.get("props")) if v5 else None)
            pump(lambda: st["suback"] is not None, "SUBACK")
            emit(event="subscribed", reasons=st["suback"])
        elif op == "pub":
            n = step.get("count", 1)
            msgs = []
            for i in range(n):
                if "payload_hex" in step:
                    payload = bytes.fromhex(step["payload_hex"])
                else:
                    payload = step.get("payload", "").encode("utf-8")
                if n > 1:
                    payload += str(i).encode()
                msgs.append((step["topic"], payload, step.get("qos", 0), step.get("retain", False),
                             props_in(PacketTypes.PUBLISH, step.get("props")) if v5 else None))
            publish_all(msgs)
        elif op == "recv":
            pump(lambda: len(st["messages"]) >= step["count"], "%d messages" % step["count"])
        elif op == "until":
            pump(lambda: any(m[0] == step["topic"] and m[1] == step["payload"].encode() for m in st["messages"]),
                 "%s %s" % (step["topic"], step["payload"]))
        elif op == "reply":
            pump(lambda: len(st["messages"]) >= step["count"], "%d requests" % step["count"])
            replies = []
            for topic_, payload, qos, po in st["messages"][:step["count"]]:
                if "ResponseTopic" not in po:
                    continue
                rp = {}
                if "CorrelationData" in po:
                    rp["CorrelationData"] = po["CorrelationData"]
                replies.append((po["ResponseTopic"], b"re:" + payload, qos, False, props_in(PacketTypes.PUBLISH, rp)))
            publish_all(replies)
        elif op == "hold":
            emit(event="holding")
            pump(lambda: st["closed"], "the server to close the connection")
            emit(event="done")
            sys.exit(0)
        elif op == "die":
            # Gone without DISCONNECT: the broker must publish the will.
            emit(event="dying")
            c.socket().close()
            os._exit(1)
        elif op == "disconnect":
            st["connected"] = False  # on_disconnect reports nothing for our own DISCONNECT
            if v5:
                c.disconnect(reasoncode=ReasonCodes(PacketTypes.DISCONNECT, identifier=step.get("rc", 0)),
                             properties=props_in(PacketTypes.DISCONNECT, step.get("props")))
            else:
                c.disconnect()
            pump(lambda: st["closed"], "the connection to close")
            emit(event="done")
            sys.exit(0)
        else:
            emit(event="error", message="unknown step %r" % op)
            sys.exit(4)


if __name__ == "__main__":
    main()
