package redis

import goredis "github.com/redis/go-redis/v9"

// applyScript applies a batch of changes, in order, atomically (a script
// runs alone on its Redis). KEYS[1] only routes the call to the shard
// that holds the keys (on Redis Cluster every key a call touches is in
// KEYS[1]'s slot: see Store.groups). ARGV: the prefix, the time in
// milliseconds, then the changes, each a code and its arguments:
//
//	S id info              PutSession
//	D id                   DeleteSession
//	B id filter sub        Subscribe
//	U id filter            Unsubscribe
//	E id seq head m pid r  Enqueue: record head..ARGV[m], packet id, released (0/1)
//	T id seq pid           Sent
//	R id seq               Released
//	Q id seq               Dequeue
//	A id pid / a id pid    AddIncoming / DeleteIncoming
//	M key topic msg        Retain (set) in the hash key
//	m key topic            Retain (delete)
//	"" msg                 a message the enqueues after it refer to
//	X key id               raise the largest message id in key to id
//
// Sequence numbers stay strings (Lua numbers are doubles); packet ids
// are compared as canonical decimal strings. A session's keys (see
// Store.key) are i (HASH: i its info record, t the last write in ms), s
// (HASH filter → subscription), q (HASH seq → record), f (HASH seq →
// "pid:released" for messages in flight or released), p (HASH packet id →
// seq: a packet id names one flight at a time) and n (SET of incoming
// QoS 2 packet ids). The semantics are store/memory's, change for change.
var applyScript = goredis.NewScript(`
local P, now = ARGV[1], ARGV[2]
local function k(id, s) return P .. ':{' .. P .. ':sess:' .. id .. '}:' .. s end
local touched = {}
local function create(id)
  touched[id] = true
  if redis.call('HEXISTS', k(id, 'i'), 'i') == 0 then
    redis.call('HSET', k(id, 'i'), 'i', '')
  end
end
local function flight(id, seq)
  local f = redis.call('HGET', k(id, 'f'), seq)
  if not f then return '0', '0' end
  local pid, rel = string.match(f, '^(%d+):(%d)$')
  return pid, rel
end
local function remove(id, seq)
  if redis.call('HEXISTS', k(id, 'q'), seq) == 0 then return end
  local pid = flight(id, seq)
  if pid ~= '0' and redis.call('HGET', k(id, 'p'), pid) == seq then
    redis.call('HDEL', k(id, 'p'), pid)
  end
  redis.call('HDEL', k(id, 'q'), seq)
  redis.call('HDEL', k(id, 'f'), seq)
end
local function sent(id, seq, pid)
  if pid == '0' then return end
  local old = redis.call('HGET', k(id, 'p'), pid)
  if old and old ~= seq then remove(id, old) end
  if redis.call('HEXISTS', k(id, 'q'), seq) == 1 then
    local cur, rel = flight(id, seq)
    if cur ~= '0' and cur ~= pid and redis.call('HGET', k(id, 'p'), cur) == seq then
      redis.call('HDEL', k(id, 'p'), cur)
    end
    redis.call('HSET', k(id, 'f'), seq, pid .. ':' .. rel)
    redis.call('HSET', k(id, 'p'), pid, seq)
  end
end
local i = 3
while i <= #ARGV do
  local op, id = ARGV[i], ARGV[i + 1]
  if op == 'S' then
    create(id)
    redis.call('HSET', k(id, 'i'), 'i', ARGV[i + 2])
    i = i + 3
  elseif op == 'D' then
    redis.call('DEL', k(id, 'i'), k(id, 's'), k(id, 'q'), k(id, 'f'), k(id, 'p'), k(id, 'n'))
    touched[id] = true
    i = i + 2
  elseif op == 'B' then
    create(id)
    redis.call('HSET', k(id, 's'), ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'U' then
    redis.call('HDEL', k(id, 's'), ARGV[i + 2])
    touched[id] = true
    i = i + 3
  elseif op == 'E' then
    local seq = ARGV[i + 2]
    create(id)
    remove(id, seq)
    redis.call('HSET', k(id, 'q'), seq, ARGV[i + 3] .. ARGV[tonumber(ARGV[i + 4])])
    if ARGV[i + 6] == '1' then
      redis.call('HSET', k(id, 'f'), seq, '0:1')
    end
    sent(id, seq, ARGV[i + 5])
    i = i + 7
  elseif op == 'T' then
    touched[id] = true
    sent(id, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'R' then
    local seq = ARGV[i + 2]
    touched[id] = true
    if redis.call('HEXISTS', k(id, 'q'), seq) == 1 then
      local pid = flight(id, seq)
      redis.call('HSET', k(id, 'f'), seq, pid .. ':1')
    end
    i = i + 3
  elseif op == 'Q' then
    touched[id] = true
    remove(id, ARGV[i + 2])
    i = i + 3
  elseif op == 'A' then
    create(id)
    redis.call('SADD', k(id, 'n'), ARGV[i + 2])
    i = i + 3
  elseif op == 'a' then
    touched[id] = true
    redis.call('SREM', k(id, 'n'), ARGV[i + 2])
    i = i + 3
  elseif op == 'M' then
    redis.call('HSET', id, ARGV[i + 2], ARGV[i + 3], '\0t', now)
    i = i + 4
  elseif op == 'm' then
    redis.call('HDEL', id, ARGV[i + 2])
    redis.call('HSET', id, '\0t', now)
    i = i + 3
  elseif op == 'X' then
    local cur, v = redis.call('GET', id), ARGV[i + 2]
    if not cur or #cur < #v or (#cur == #v and cur < v) then
      redis.call('SET', id, v)
    end
    i = i + 3
  elseif op == '' then
    i = i + 2 -- a message (ARGV[i + 1]), referred to by the enqueues
  else
    return redis.error_reply('store/redis: unknown change ' .. op)
  end
end
for id in pairs(touched) do
  if redis.call('EXISTS', k(id, 'i')) == 1 then
    redis.call('HSET', k(id, 'i'), 't', now)
  end
end
return 0
`)
