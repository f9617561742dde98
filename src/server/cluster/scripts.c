/*
 * scripts.c - the Lua scripts chatd runs in Redis (keys and protocol in
 * include/pubsub.h).  Each runs atomically, so a presence check and the
 * push it guards, or a take and its move to the processing list, are
 * one step.
 */
#include "config.h"

#include "ps_int.h"

#define STR(x)		#x
#define XSTR(x)		STR(x)
#define ACK_PREFIX_S	XSTR(ACK_PREFIX)

/*
 * live(v): v is a presence value "<node> <boot> <slot> <gen>" whose
 * node key still holds boot and whose slot key still holds gen.  It
 * also gives the node, boot and slot, which name the worker's queue
 * chatd:q:<node>:<boot>:<slot>.
 */
#define LUA_LIVE \
	"local function live(v)\n" \
	"  if not v then return false end\n" \
	"  local n, b, s, g = string.match(v, '^(.*) (%x+) (%d+) (%d+)$')\n" \
	"  if not n then return false end\n" \
	"  if redis.call('GET', 'chatd:node:' .. n) ~= b then\n" \
	"    return false\n" \
	"  end\n" \
	"  if redis.call('GET', 'chatd:slot:' .. n .. ':' .. s) ~= g then\n" \
	"    return false\n" \
	"  end\n" \
	"  return true, n, b, s\n" \
	"end\n"

/*
 * where(keys): for each presence key the queue of the live worker it
 * names, or false.  Two MGETs however many keys (presence, then the
 * node and slot keys they name), where live() costs two GETs a key.
 */
#define LUA_WHERE \
	"local function where(keys)\n" \
	"  local vals = redis.call('MGET', unpack(keys))\n" \
	"  local need, idx, parsed = {}, {}, {}\n" \
	"  local function want(k)\n" \
	"    if not idx[k] then need[#need + 1] = k; idx[k] = #need end\n" \
	"  end\n" \
	"  for i, v in ipairs(vals) do\n" \
	"    if v then\n" \
	"      local n, b, s, g = string.match(v, '^(.*) (%x+) (%d+) (%d+)$')\n" \
	"      if n then\n" \
	"        parsed[i] = {n, b, s, g}\n" \
	"        want('chatd:node:' .. n)\n" \
	"        want('chatd:slot:' .. n .. ':' .. s)\n" \
	"      end\n" \
	"    end\n" \
	"  end\n" \
	"  local live = {}\n" \
	"  if #need > 0 then live = redis.call('MGET', unpack(need)) end\n" \
	"  local r = {}\n" \
	"  for i = 1, #keys do\n" \
	"    local p = parsed[i]\n" \
	"    r[i] = false\n" \
	"    if p and live[idx['chatd:node:' .. p[1]]] == p[2] and\n" \
	"        live[idx['chatd:slot:' .. p[1] .. ':' .. p[3]]] == p[4] then\n" \
	"      r[i] = 'chatd:q:' .. p[1] .. ':' .. p[2] .. ':' .. p[3]\n" \
	"    end\n" \
	"  end\n" \
	"  return r\n" \
	"end\n"

/*
 * qdead(n, b, s): the queue of worker slot s of run b of node n has no
 * taker any more: the node is gone or restarted, or the slot has not
 * announced itself for KEY_TTL_SECONDS.  (A respawned worker takes its
 * predecessor's queue over: same node, run and slot.)  qmove moves up
 * to max items from the head of one list to the tail of another and
 * returns them: nothing leaves Redis.
 */
#define LUA_QDEAD \
	"local function qdead(n, b, s)\n" \
	"  return redis.call('GET', 'chatd:node:' .. n) ~= b or\n" \
	"      redis.call('EXISTS', 'chatd:slot:' .. n .. ':' .. s) == 0\n" \
	"end\n" \
	"local function qmove(from, to, max)\n" \
	"  if max <= 0 then return {} end\n" \
	"  local r = redis.call('LRANGE', from, 0, max - 1)\n" \
	"  if #r > 0 then\n" \
	"    redis.call('LTRIM', from, #r, -1)\n" \
	"    redis.call('RPUSH', to, unpack(r))\n" \
	"  end\n" \
	"  return r\n" \
	"end\n" \
	"local function qreap(k, to, max)\n" \
	"  local out = qmove(k .. ':p', to, max)\n" \
	"  for _, v in ipairs(qmove(k, to, max - #out)) do\n" \
	"    out[#out + 1] = v\n" \
	"  end\n" \
	"  if redis.call('LLEN', k) + redis.call('LLEN', k .. ':p') == 0 then\n" \
	"    redis.call('SREM', 'chatd:queues', k)\n" \
	"  end\n" \
	"  return out\n" \
	"end\n"

const char *const ps_scripts[NSCRIPTS] = {
	/*
	 * KEYS[1] presence key; ARGV: our value, our node, our boot[, "1":
	 * take over].  {1} when live on another node (or another run of
	 * ours) and not taken over, else taken: {0}, or {0, queue} when
	 * the previous holder's worker is dead and left items (the caller
	 * reaps them in the background).  Our own node's entries are ours
	 * to overwrite: its session table already said "not online".  The
	 * PUBLISH names the new holder after the uid: a live holder that
	 * was taken over learns it there (presence_changed) and closes its
	 * session.
	 */
	[SCRIPT_CLAIM] = LUA_LIVE LUA_QDEAD
	"local v = redis.call('GET', KEYS[1])\n"
	"local q = nil\n"
	"if v and v ~= ARGV[1] then\n"
	"  local ok, n, b = live(v)\n"
	"  if ok and (n ~= ARGV[2] or b ~= ARGV[3]) and ARGV[4] ~= '1' then\n"
	"    return {1}\n"
	"  end\n"
	"  local n2, b2, s2 = string.match(v, '^(.*) (%x+) (%d+) %d+$')\n"
	"  if not ok and n2 then\n"
	"    local k = 'chatd:q:' .. n2 .. ':' .. b2 .. ':' .. s2\n"
	"    if redis.call('LLEN', k) + redis.call('LLEN', k .. ':p') > 0\n"
	"        and qdead(n2, b2, s2) then\n"
	"      q = k\n"
	"    end\n"
	"  end\n"
	"end\n"
	"redis.call('SET', KEYS[1], ARGV[1])\n"
	"if v ~= ARGV[1] then\n"
	"  redis.call('PUBLISH', 'chatd:presence',\n"
	"      string.sub(KEYS[1], 10) .. ' ' .. ARGV[1])\n"
	"end\n"
	"if q then return {0, q} end\n"
	"return {0}\n",

	/*
	 * KEYS[1] presence key; ARGV[1] our value: delete it if still ours.
	 * Claims and releases tell chatd:presence (presence caches).
	 */
	[SCRIPT_RELEASE] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	"  redis.call('DEL', KEYS[1])\n"
	"  redis.call('PUBLISH', 'chatd:presence', string.sub(KEYS[1], 10))\n"
	"end\n"
	"return 0\n",

	/* KEYS presence keys: 1 (live) or 0 for each. */
	[SCRIPT_QUERY] = LUA_LIVE
	"local r = {}\n"
	"for i, k in ipairs(KEYS) do\n"
	"  if live(redis.call('GET', k)) then r[i] = 1 else r[i] = 0 end\n"
	"end\n"
	"return r\n",

	/*
	 * KEYS presence keys, ARGV one item each: each item is queued for
	 * the live worker its key names (its queue's name) or not (0).
	 * Also the nudges.  One RPUSH per queue, the items in order.
	 */
	[SCRIPT_PUBLISH] = LUA_WHERE
	"local r, byq, order = where(KEYS), {}, {}\n"
	"for i = 1, #KEYS do\n"
	"  local q = r[i]\n"
	"  if q then\n"
	"    if not byq[q] then byq[q] = {}; order[#order + 1] = q end\n"
	"    byq[q][#byq[q] + 1] = ARGV[i]\n"
	"  else\n"
	"    r[i] = 0\n"
	"  end\n"
	"end\n"
	"for _, q in ipairs(order) do redis.call('RPUSH', q, unpack(byq[q])) end\n"
	"return r\n",

	/* KEYS our queue, our processing list; ARGV[1] at most. */
	[SCRIPT_TAKE] = LUA_QDEAD
	"return qmove(KEYS[1], KEYS[2], tonumber(ARGV[1]))\n",

	/* KEYS a queue, our processing list; ARGV[1] at most: if dead. */
	[SCRIPT_REAP] = LUA_QDEAD
	"local n, b, s = string.match(KEYS[1], '^chatd:q:(.*):(%x+):(%d+)$')\n"
	"if not n or not qdead(n, b, s) then return {} end\n"
	"return qreap(KEYS[1], KEYS[2], tonumber(ARGV[1]))\n",

	/*
	 * KEYS our processing list; ARGV at most, our queue: items of
	 * queues whose workers are dead, from a few of the known queues
	 * picked at random; forgets the emptied ones.
	 */
	[SCRIPT_REAPALL] = LUA_QDEAD
	"local max = tonumber(ARGV[1])\n"
	"local out = {}\n"
	"for _, k in ipairs(redis.call('SRANDMEMBER', 'chatd:queues', 16)) do\n"
	"  local n, b, s = string.match(k, '^chatd:q:(.*):(%x+):(%d+)$')\n"
	"  if not n then\n"
	"    redis.call('SREM', 'chatd:queues', k)\n"
	"  elseif k ~= ARGV[2] and qdead(n, b, s) then\n"
	"    for _, v in ipairs(qreap(k, KEYS[1], max - #out)) do\n"
	"      out[#out + 1] = v\n"
	"    end\n"
	"  end\n"
	"  if #out >= max then break end\n"
	"end\n"
	"return out\n",

	/*
	 * KEYS our processing list P; ARGV[1] n, then for each element of
	 * one batch, in the order taken, (length, first bytes, what): ""
	 * delete it, "=" leave it, else replace it by this at P's tail
	 * (re-signed).  The batch is found by reference, never by its
	 * bytes: a taken batch is P's tail, a resumed one P's head, each
	 * checked element by element; else (a reaper took part of P, or
	 * an element was left out) each element is looked up in P alone.
	 * What is not found is left alone (a reaper moved it: its ack is
	 * not ours), so a repeated ack does nothing.
	 */
	[SCRIPT_ACK] =
	"local p, n, pre = KEYS[1], tonumber(ARGV[1]), " ACK_PREFIX_S "\n"
	"local function is(v, i)\n"
	"  local b = 3 * i - 1\n"
	"  return #v == tonumber(ARGV[b]) and\n"
	"      string.sub(v, 1, #ARGV[b + 1]) == ARGV[b + 1]\n"
	"end\n"
	"local len = redis.call('LLEN', p)\n"
	"local function range(from)\n"
	"  if from < 0 or from + n > len then return nil end\n"
	"  local r = redis.call('LRANGE', p, from, from + n - 1)\n"
	"  for i = 1, n do if not is(r[i], i) then return nil end end\n"
	"  return r\n"
	"end\n"
	"local at = len - n\n"
	"local r = range(at)\n"
	"if not r and at ~= 0 then at = 0; r = range(0) end\n"
	"local back = {}\n"
	"if r then\n"
	"  if at == 0 then redis.call('LTRIM', p, n, -1)\n"
	"  else redis.call('LTRIM', p, 0, at - 1) end\n"
	"  for i = 1, n do\n"
	"    local w = ARGV[3 * i + 1]\n"
	"    if w == '=' then back[#back + 1] = r[i]\n"
	"    elseif w ~= '' then back[#back + 1] = w end\n"
	"  end\n"
	"else\n"
	"  local idx, mark = {}, '-chatd-ack-'\n"
	"  for j, v in ipairs(redis.call('LRANGE', p, 0, -1)) do\n"
	"    local k = #v .. ' ' .. string.sub(v, 1, pre)\n"
	"    if idx[k] then table.insert(idx[k], j) else idx[k] = {j} end\n"
	"  end\n"
	"  local marked = false\n"
	"  for i = 1, n do\n"
	"    local b = 3 * i - 1\n"
	"    local l = idx[ARGV[b] .. ' ' .. ARGV[b + 1]]\n"
	"    local w = ARGV[b + 2]\n"
	"    if l and #l > 0 and w ~= '=' then\n"
	"      redis.call('LSET', p, table.remove(l, 1) - 1, mark)\n"
	"      marked = true\n"
	"      if w ~= '' then back[#back + 1] = w end\n"
	"    end\n"
	"  end\n"
	"  if marked then redis.call('LREM', p, 0, mark) end\n"
	"end\n"
	"if #back > 0 then redis.call('RPUSH', p, unpack(back)) end\n"
	"return 0\n",
	/* KEYS presence keys: the live queue of each, or 0 (fan-out). */
	[SCRIPT_LOCATE] = LUA_WHERE
	"local r = where(KEYS)\n"
	"for i = 1, #KEYS do if not r[i] then r[i] = 0 end end\n"
	"return r\n",

	/*
	 * KEYS failed-login counters; ARGV window, block (seconds), then
	 * the limit of each key (0: not counted).  INCR, with its EXPIRE
	 * on the first failure of a window; at the limit the key is
	 * blocked for block seconds, doubling with each block in a row up
	 * to 64 times (level key k:l, forgotten after twice the block),
	 * and every node is told on chatd:lf ("<key> <seconds>").
	 */
	[SCRIPT_LOGIN_FAILED] =
	"local w, b = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"local out = 0\n"
	"for i, k in ipairs(KEYS) do\n"
	"  local max = tonumber(ARGV[2 + i])\n"
	"  if max and max > 0 then\n"
	"    local n = redis.call('INCR', k)\n"
	"    if n == 1 then redis.call('EXPIRE', k, w) end\n"
	"    if n >= max then\n"
	"      local lv = redis.call('INCR', k .. ':l')\n"
	"      if lv > 7 then lv = 7 end\n"
	"      local len = b\n"
	"      for _ = 2, lv do len = len * 2 end\n"
	"      redis.call('SET', k .. ':b', '1', 'EX', len)\n"
	"      redis.call('EXPIRE', k .. ':l', 2 * len)\n"
	"      redis.call('DEL', k)\n"
	"      redis.call('PUBLISH', 'chatd:lf', string.sub(k, 10) .. ' ' .. len)\n"
	"      if len > out then out = len end\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return out\n",
};
