#!/usr/bin/env node
// MQTT.js client driven by the Tern interop tests (broker/interop5_test.go).
//
// Install its one dependency first, pinned in package-lock.json:
//
//     cd broker/testdata/interop/mqttjs && npm ci
//
// Usage:
//
//     node client.js --url mqtt://127.0.0.1:1883 [--id ID] [--clean 0|1]
//         [--version 5|4] [--options JSON] [--steps JSON] [--timeout SECONDS]
//
// --url is mqtt://host:port or ws://host:port/path. --options is merged
// into the options of mqtt.connect (for instance {"properties":
// {"topicAliasMaximum": 10}, "autoAssignTopicAlias": true, "will": {...}}).
// --steps is a JSON array of steps run in order once connected:
//
//   {"op":"sub","subs":[{"topic":"a/#","qos":1,"nl":false,"rap":false,"rh":0}],"props":{...}}
//       SUBSCRIBE and wait for the SUBACK ("subscribed" event)
//   {"op":"pub","topic":"a/b","payload":"m","count":1,"qos":1,"retain":false,"props":{...}}
//       publish count messages (payload + index when count > 1), wait for
//       their acknowledgements ("published" event)
//   {"op":"recv","count":N}      wait until N messages have been received
//   {"op":"disconnect","rc":0,"props":{...}}
//       send DISCONNECT with reason code rc and exit 0
//   {"op":"die"}                 destroy the socket without DISCONNECT, exit 1
//   {"op":"hold"}                wait until the server closes the connection
//                                (exit 0) or the timeout
//
// After the last step the client disconnects normally. Properties use
// MQTT.js names (userProperties as an object, values a string or a list
// of strings); correlationData and authenticationData are hex strings.
//
// Every event is one JSON object on a line of stdout:
//
//   {"event":"connected","session_present":false,"props":{...}}
//   {"event":"subscribed","granted":[1]}
//   {"event":"message","topic":"a/b","payload":"m","payload_hex":"6d","qos":1,"retain":false,"dup":false,"props":{...}}
//   {"event":"wire","dir":"in"|"out","topic":"","alias":1}   every PUBLISH as on the wire
//   {"event":"published","count":1}
//   {"event":"disconnect","rc":142,"props":{...}}            a DISCONNECT from the server
//   {"event":"closed"}  {"event":"done"}  {"event":"error","message":"..."}
//
// Exit status: 0 done, 1 "die", 2 timeout, 3 connection refused or failed.
'use strict'

const mqtt = require('mqtt')

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function parseArgs (argv) {
  const a = { url: '', id: '', clean: true, version: 5, options: {}, steps: [], timeout: 15 }
  for (let i = 2; i < argv.length; i++) {
    const v = argv[i + 1]
    switch (argv[i]) {
      case '--url': a.url = v; i++; break
      case '--id': a.id = v; i++; break
      case '--clean': a.clean = v !== '0'; i++; break
      case '--version': a.version = Number(v); i++; break
      case '--options': a.options = JSON.parse(v); i++; break
      case '--steps': a.steps = JSON.parse(v); i++; break
      case '--timeout': a.timeout = Number(v); i++; break
      default:
        process.stderr.write('unknown argument ' + argv[i] + '\n')
        process.exit(64)
    }
  }
  if (!a.url) {
    process.stderr.write('--url is required\n')
    process.exit(64)
  }
  return a
}

const binaryProps = ['correlationData', 'authenticationData']

// propsIn turns JSON properties into MQTT.js properties (hex -> Buffer).
function propsIn (p) {
  if (!p) return undefined
  const out = { ...p }
  for (const k of binaryProps) {
    if (typeof out[k] === 'string') out[k] = Buffer.from(out[k], 'hex')
  }
  return out
}

// propsOut turns received properties into JSON (Buffer -> hex).
function propsOut (p) {
  const out = {}
  for (const [k, v] of Object.entries(p || {})) {
    out[k] = Buffer.isBuffer(v) ? v.toString('hex') : v
  }
  return out
}

function main () {
  const a = parseArgs(process.argv)
  const timer = setTimeout(() => {
    emit({ event: 'timeout', received: messages.length })
    process.exit(2)
  }, a.timeout * 1000)

  const opts = {
    protocolVersion: a.version,
    clientId: a.id,
    clean: a.clean,
    reconnectPeriod: 0,
    connectTimeout: a.timeout * 1000,
    keepalive: 30,
    ...a.options
  }
  if (opts.will) {
    opts.will = { ...opts.will, properties: propsIn(opts.will.properties) }
  }
  if (opts.properties) opts.properties = propsIn(opts.properties)

  const messages = []
  let waiter = null // resolves when a message arrives or the connection ends
  let closed = false
  const poke = () => { if (waiter) { const w = waiter; waiter = null; w() } }
  const changed = () => new Promise(resolve => { waiter = resolve })

  const client = mqtt.connect(a.url, opts)
  let connected = false

  client.on('packetreceive', (p) => {
    if (p.cmd === 'publish') {
      emit({ event: 'wire', dir: 'in', topic: p.topic.toString(), alias: (p.properties || {}).topicAlias || 0 })
    }
  })
  client.on('packetsend', (p) => {
    if (p.cmd === 'publish') {
      emit({ event: 'wire', dir: 'out', topic: p.topic.toString(), alias: (p.properties || {}).topicAlias || 0 })
    }
  })
  client.on('message', (topic, payload, packet) => {
    emit({
      event: 'message',
      topic,
      payload: payload.toString('utf8'),
      payload_hex: payload.toString('hex'),
      qos: packet.qos,
      retain: !!packet.retain,
      dup: !!packet.dup,
      props: propsOut(packet.properties)
    })
    messages.push({ topic, payload, packet })
    poke()
  })
  client.on('disconnect', (packet) => {
    emit({ event: 'disconnect', rc: packet.reasonCode || 0, props: propsOut(packet.properties) })
  })
  client.on('error', (err) => {
    emit({ event: 'error', message: String(err && err.message), code: err && err.code })
    if (!connected) {
      process.exit(3)
    }
  })
  client.on('close', () => {
    closed = true
    poke()
    if (!connected) {
      emit({ event: 'refused' })
      process.exit(3)
    }
  })

  client.on('connect', async (connack) => {
    if (connected) return
    connected = true
    emit({ event: 'connected', session_present: !!connack.sessionPresent, rc: connack.reasonCode || 0, props: propsOut(connack.properties) })
    try {
      for (const step of a.steps) {
        await run(step)
      }
      await run({ op: 'disconnect', rc: 0 })
    } catch (err) {
      emit({ event: 'error', message: String(err && err.message) })
      process.exit(4)
    }
  })

  async function run (step) {
    switch (step.op) {
      case 'sub': {
        const granted = []
        for (const s of step.subs) {
          const o = { qos: s.qos || 0, nl: !!s.nl, rap: !!s.rap, rh: s.rh || 0 }
          if (step.props) o.properties = propsIn(step.props)
          // One SUBSCRIBE per filter: MQTT.js sends one options set per call.
          const g = await client.subscribeAsync(s.topic, o)
          for (const x of g) granted.push(x.qos)
        }
        emit({ event: 'subscribed', granted })
        return
      }
      case 'pub': {
        const n = step.count || 1
        const acks = []
        for (let i = 0; i < n; i++) {
          let payload = step.payload_hex !== undefined ? Buffer.from(step.payload_hex, 'hex') : (step.payload || '')
          if (n > 1) payload = payload + String(i)
          const o = { qos: step.qos || 0, retain: !!step.retain }
          if (step.props) o.properties = propsIn(step.props)
          acks.push(client.publishAsync(step.topic, payload, o))
        }
        await Promise.all(acks)
        emit({ event: 'published', count: n })
        return
      }
      case 'recv':
        while (messages.length < step.count) {
          if (closed) throw new Error('connection closed after ' + messages.length + ' of ' + step.count + ' messages')
          await changed()
        }
        return
      case 'hold':
        emit({ event: 'holding' })
        while (!closed) await changed()
        emit({ event: 'closed' })
        clearTimeout(timer)
        process.exit(0)
        return
      case 'die':
        // Gone without DISCONNECT: the broker must publish the will.
        emit({ event: 'dying' })
        client.stream.destroy()
        process.exit(1)
        return
      case 'disconnect': {
        const o = { reasonCode: step.rc || 0 }
        if (step.props) o.properties = propsIn(step.props)
        await client.endAsync(false, o)
        emit({ event: 'done' })
        clearTimeout(timer)
        process.exit(0)
        return
      }
      default:
        throw new Error('unknown step ' + JSON.stringify(step))
    }
  }
}

main()
