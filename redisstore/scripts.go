package redisstore

import "github.com/redis/go-redis/v9"

// The store's writes are Lua scripts, so that each is one atomic step on
// the Redis server: the state machine check, the sequence number, the
// stream entry, the task's status, the indexes and the PUBLISH that wakes
// watchers change together or not at all.
//
// Data layout (P is Config.Prefix, times are timeKeys):
//
//	P:tasks:{id}          hash: data (JSON of the immutable fields), status,
//	                      seq (LastSeq), upd, cxl, cxr (cancel request),
//	                      term (terminal time), owner, reqf, ckey (index
//	                      entries), lh, le (lease), o0..o7, xc, x0..x7
//	                      (tokens of recent calls and their results),
//	                      head (JSON of the small immutable fields: data
//	                      without input, metadata, attachments), live (the
//	                      owner's live set, until the task ends)
//	P:tasks:{id}:events   stream: entry id <seq>-0, fields t (type),
//	                      c (created), p (payload), k (idempotency key)
//	P:tasks:{id}:idem     hash: idempotency key -> "seq created type payload"
//	P:tasks:{id}:susp     hash: d:<sid> (JSON), s: (status), q: (event seq),
//	                      r: (resolved action), m: (resume), c: (closed),
//	                      x: (expires)
//	P:tasks:{id}:rcpt     hash: j:<caid> (JSON), f: (fingerprint),
//	                      q: (event seq), s: (suspend id), t: (created)
//	P:tasks:{id}:wake     channel: the seq of each append
//	P:control             channel: task ids of control changes
//	P:idx:requests        hash: len(owner):owner clientRequestId -> id
//	P:idx:tasks           sorted set (lexical): created id
//	P:idx:owner:<owner>   sorted set (lexical): created id
//	P:idx:live:<owner>    set: ids of the owner's tasks that have not ended
//	P:idx:terminal        sorted set (lexical): terminal id
//	P:idx:leases          sorted set (lexical): expires id NUL holder
//	P:idx:expiry          sorted set (lexical): expires id NUL sid (OPEN)
//	P:idx:resumes         sorted set (lexical): closed id NUL sid (PENDING)
//	P:idx:receipts        sorted set (lexical): created id NUL caid

// taskPrelude starts every per-task script. KEYS are [keys.taskKeys];
// ARGV[1..4] are [keys.taskArgs]: task id, wake-up channel, control channel
// and operation token. A script that appends an event takes it in
// ARGV[5..14]: type, created, payload, idempotency key, MaxLen ("0" for
// none), and the status the event leads to from ACCEPTED, RUNNING,
// COMPLETED, FAILED and CANCELLED ("!T": the task is terminal, "!I": not
// allowed), computed by taskbridge.NextStatus.
const taskPrelude = `
local K_TASK, K_EVENTS, K_IDEM, K_SUSP, K_RCPT = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_TERMINAL, K_LEASES, K_EXPIRY, K_RESUMES, K_RECEIPTS = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local TASK_ID, CH_WAKE, CH_CONTROL, OP = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local SEP = '\0'
local STATUS_INDEX = {ACCEPTED = 1, RUNNING = 2, COMPLETED = 3, FAILED = 4, CANCELLED = 5}
local TERMINAL = {COMPLETED = true, FAILED = true, CANCELLED = true}

local function task_fields()
  return redis.call('HMGET', K_TASK, 'data', 'status', 'seq', 'upd', 'cxl', 'cxr')
end

local function susp_fields(sid)
  return redis.call('HMGET', K_SUSP, 'd:' .. sid, 's:' .. sid, 'q:' .. sid, 'r:' .. sid, 'm:' .. sid, 'c:' .. sid)
end

local function rcpt_fields(caid)
  return redis.call('HMGET', K_RCPT, 'j:' .. caid, 'q:' .. caid)
end

-- load_task returns the task's status (false: no such task) and, when the
-- script already ran for this call's token (a retried command), the result
-- it recorded in ring r: "o" for scripts that append (slot seq % 8), "x"
-- for the others (see op_record).
local function load_task(r)
  local f = redis.call('HMGET', K_TASK, 'status', r .. '0', r .. '1', r .. '2', r .. '3', r .. '4', r .. '5', r .. '6', r .. '7')
  if not f[1] or OP == '' then return f[1], false end
  local pre = OP .. ' '
  for i = 2, 9 do
    local v = f[i]
    if v and string.sub(v, 1, #pre) == pre then return f[1], string.sub(v, #pre + 1) end
  end
  return f[1], false
end

-- op_record remembers result for this call's token in ring "x".
local function op_record(result)
  local n = redis.call('HINCRBY', K_TASK, 'xc', 1)
  redis.call('HSET', K_TASK, 'x' .. (n % 8), OP .. ' ' .. result)
end

local function unindex_expiry(sid)
  local x = redis.call('HGET', K_SUSP, 'x:' .. sid)
  if x then redis.call('ZREM', K_EXPIRY, x .. TASK_ID .. SEP .. sid) end
end

-- append_event appends the event in ARGV[5..14] to a task in status cur,
-- applies its effects and records the call's token in ring "o". It returns
-- the new seq, or false and an error code.
local function append_event(cur)
  local etype, ctime, payload, ikey, maxlen = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local i = STATUS_INDEX[cur]
  if not i then return false, '!U' end
  local nxt = ARGV[9 + i]
  if string.sub(nxt, 1, 1) == '!' then return false, nxt end
  local seqn = redis.call('HINCRBY', K_TASK, 'seq', 1)
  local seq = string.format('%d', seqn)
  local xadd = {'XADD', K_EVENTS}
  if maxlen ~= '0' then
    xadd[3], xadd[4], xadd[5] = 'MAXLEN', '~', maxlen
  end
  local n = #xadd
  xadd[n + 1], xadd[n + 2], xadd[n + 3], xadd[n + 4], xadd[n + 5], xadd[n + 6], xadd[n + 7] =
    seq .. '-0', 't', etype, 'c', ctime, 'p', payload
  if ikey ~= '' then
    xadd[n + 8], xadd[n + 9] = 'k', ikey
  end
  redis.call(unpack(xadd))
  redis.call('HSET', K_TASK, 'status', nxt, 'upd', ctime, 'o' .. (seqn % 8), OP .. ' ' .. seq)
  if ikey ~= '' then
    redis.call('HSET', K_IDEM, ikey, seq .. ' ' .. ctime .. ' ' .. etype .. ' ' .. payload)
  end
  if TERMINAL[nxt] then
    local live = redis.call('HGET', K_TASK, 'live')
    if live then redis.call('SREM', live, TASK_ID) end
    redis.call('HSET', K_TASK, 'term', ctime)
    redis.call('ZADD', K_TERMINAL, 0, ctime .. TASK_ID)
    local all = redis.call('HGETALL', K_SUSP)
    for j = 1, #all, 2 do
      local f = all[j]
      if string.sub(f, 1, 2) == 's:' and all[j + 1] == 'OPEN' then
        local sid = string.sub(f, 3)
        redis.call('HSET', K_SUSP, f, 'CANCELLED', 'c:' .. sid, ctime)
        unindex_expiry(sid)
      end
    end
    local lease = redis.call('HMGET', K_TASK, 'lh', 'le')
    if lease[1] then redis.call('ZREM', K_LEASES, lease[2] .. TASK_ID .. SEP .. lease[1]) end
  end
  redis.call('PUBLISH', CH_WAKE, seq)
  return seq
end
`

func taskScript(body string) *redis.Script { return redis.NewScript(taskPrelude + body) }

// appendScript appends an event: {"OK", seq} | {"DUP", stored} |
// {"NOTFOUND"} | {code, status}.
var appendScript = taskScript(`
local cur, seen = load_task('o')
if not cur then return {'NOTFOUND'} end
if seen then return {'OK', seen} end
local ikey = ARGV[8]
if ikey ~= '' then
  local dup = redis.call('HGET', K_IDEM, ikey)
  if dup then return {'DUP', dup} end
end
local seq, code = append_event(cur)
if not seq then return {code, cur} end
return {'OK', seq}
`)

// openScript opens suspension ARGV[15] with JSON ARGV[16] and expiry
// ARGV[17] ("" for none) and appends its event: {"OK", seq} |
// {"NOTFOUND"} | {"DUPLICATE"} | {code, status}.
var openScript = taskScript(`
local cur, seen = load_task('o')
if not cur then return {'NOTFOUND'} end
if seen then return {'OK', seen} end
local sid = ARGV[15]
if redis.call('HEXISTS', K_SUSP, 'd:' .. sid) == 1 then return {'DUPLICATE'} end
local seq, code = append_event(cur)
if not seq then return {code, cur} end
redis.call('HSET', K_SUSP, 'd:' .. sid, ARGV[16], 's:' .. sid, 'OPEN', 'q:' .. sid, seq, 'm:' .. sid, 'NONE', 'c:' .. sid, '')
local x = ARGV[17]
if x ~= '' then
  redis.call('HSET', K_SUSP, 'x:' .. sid, x)
  redis.call('ZADD', K_EXPIRY, 0, x .. TASK_ID .. SEP .. sid)
end
return {'OK', seq}
`)

// acceptScript decides action ARGV[16] (fingerprint ARGV[17], receipt JSON
// ARGV[18], receipt created ARGV[20]) on suspension ARGV[15] at ARGV[19]:
// {outcome, seq, suspension, receipt} | {"NOTFOUND"} | {"NOSUSP"} |
// {"CONFLICT"} | {code, status}.
var acceptScript = taskScript(`
local cur, seen = load_task('o')
if not cur then return {'NOTFOUND'} end
local sid, caid, fp, now = ARGV[15], ARGV[16], ARGV[17], ARGV[19]
if redis.call('HEXISTS', K_SUSP, 'd:' .. sid) == 0 then return {'NOSUSP'} end
if seen then return {'ACCEPTED', seen, susp_fields(sid), rcpt_fields(caid)} end
local oldfp = redis.call('HGET', K_RCPT, 'f:' .. caid)
if oldfp then
  if oldfp ~= fp then return {'CONFLICT'} end
  local osid = redis.call('HGET', K_RCPT, 's:' .. caid)
  if not osid or redis.call('HEXISTS', K_SUSP, 'd:' .. osid) == 0 then osid = sid end
  return {'DEDUPLICATED', '', susp_fields(osid), rcpt_fields(caid)}
end
local st = redis.call('HGET', K_SUSP, 's:' .. sid)
if st == 'OPEN' then
  local x = redis.call('HGET', K_SUSP, 'x:' .. sid)
  if x and x <= now then
    redis.call('HSET', K_SUSP, 's:' .. sid, 'EXPIRED', 'c:' .. sid, now)
    redis.call('ZREM', K_EXPIRY, x .. TASK_ID .. SEP .. sid)
    st = 'EXPIRED'
  end
end
if st == 'EXPIRED' then return {'REJECTED_EXPIRED', '', susp_fields(sid)} end
if st ~= 'OPEN' or TERMINAL[cur] then
  return {'REJECTED_ALREADY_RESOLVED', '', susp_fields(sid)}
end
local seq, code = append_event(cur)
if not seq then return {code, cur} end
redis.call('HSET', K_SUSP, 's:' .. sid, 'RESOLVED', 'r:' .. sid, caid, 'c:' .. sid, now, 'm:' .. sid, 'PENDING')
unindex_expiry(sid)
redis.call('ZADD', K_RESUMES, 0, now .. TASK_ID .. SEP .. sid)
local rkey = ARGV[20]
redis.call('HSET', K_RCPT, 'j:' .. caid, ARGV[18], 'f:' .. caid, fp, 'q:' .. caid, seq, 's:' .. caid, sid, 't:' .. caid, rkey)
redis.call('ZADD', K_RECEIPTS, 0, rkey .. TASK_ID .. SEP .. caid)
redis.call('PUBLISH', CH_CONTROL, TASK_ID)
return {'ACCEPTED', seq, susp_fields(sid), rcpt_fields(caid)}
`)

// closeScript moves OPEN suspension ARGV[5] to status ARGV[6] at ARGV[7]:
// {"CHANGED"|"UNCHANGED", suspension} | {"NOTFOUND"} | {"NOSUSP"}.
var closeScript = taskScript(`
local cur, seen = load_task('x')
if not cur then return {'NOTFOUND'} end
local sid = ARGV[5]
if redis.call('HEXISTS', K_SUSP, 'd:' .. sid) == 0 then return {'NOSUSP'} end
if seen then return {'CHANGED', susp_fields(sid)} end
if redis.call('HGET', K_SUSP, 's:' .. sid) ~= 'OPEN' then return {'UNCHANGED', susp_fields(sid)} end
redis.call('HSET', K_SUSP, 's:' .. sid, ARGV[6], 'c:' .. sid, ARGV[7])
unindex_expiry(sid)
op_record('1')
return {'CHANGED', susp_fields(sid)}
`)

// dispatchedScript marks the resume of suspension ARGV[5] DISPATCHED:
// {"OK"} | {"NOTFOUND"} | {"NOSUSP"}.
var dispatchedScript = taskScript(`
if redis.call('EXISTS', K_TASK) == 0 then return {'NOTFOUND'} end
local sid = ARGV[5]
if redis.call('HEXISTS', K_SUSP, 'd:' .. sid) == 0 then return {'NOSUSP'} end
if redis.call('HGET', K_SUSP, 'm:' .. sid) == 'PENDING' then
  redis.call('HSET', K_SUSP, 'm:' .. sid, 'DISPATCHED')
  local c = redis.call('HGET', K_SUSP, 'c:' .. sid) or ''
  redis.call('ZREM', K_RESUMES, c .. TASK_ID .. SEP .. sid)
end
return {'OK'}
`)

// cancelScript records a cancel request with reason ARGV[5] at ARGV[6]:
// {"FIRST"|"NOTFIRST", task} | {"NOTFOUND"}.
var cancelScript = taskScript(`
local cur, seen = load_task('x')
if not cur then return {'NOTFOUND'} end
if seen then return {'FIRST', task_fields()} end
if TERMINAL[cur] or redis.call('HGET', K_TASK, 'cxl') == '1' then return {'NOTFIRST', task_fields()} end
redis.call('HSET', K_TASK, 'cxl', '1', 'cxr', ARGV[5], 'upd', ARGV[6])
redis.call('PUBLISH', CH_CONTROL, TASK_ID)
op_record('1')
return {'FIRST', task_fields()}
`)

// acquireScript gives holder ARGV[5] the lease until ARGV[7] if it is free
// at ARGV[6]: {"ACQUIRED"|"HELD", holder, expires} | {"NOTFOUND"} |
// {"TERMINAL", status}.
var acquireScript = taskScript(`
if redis.call('EXISTS', K_TASK) == 0 then return {'NOTFOUND'} end
local cur = redis.call('HMGET', K_TASK, 'lh', 'le', 'status')
if TERMINAL[cur[3]] then return {'TERMINAL', cur[3]} end
local h, e = cur[1], cur[2]
if h and h ~= ARGV[5] and e > ARGV[6] then return {'HELD', h, e} end
if h then redis.call('ZREM', K_LEASES, e .. TASK_ID .. SEP .. h) end
redis.call('HSET', K_TASK, 'lh', ARGV[5], 'le', ARGV[7])
redis.call('ZADD', K_LEASES, 0, ARGV[7] .. TASK_ID .. SEP .. ARGV[5])
return {'ACQUIRED', ARGV[5], ARGV[7]}
`)

// renewScript extends holder ARGV[5]'s lease to ARGV[7]: {"OK", holder,
// expires} | {"NOTFOUND"} | {"LOST", holder}.
var renewScript = taskScript(`
if redis.call('EXISTS', K_TASK) == 0 then return {'NOTFOUND'} end
local cur = redis.call('HMGET', K_TASK, 'lh', 'le', 'status')
if cur[1] ~= ARGV[5] or TERMINAL[cur[3]] then return {'LOST', cur[1] or ''} end
redis.call('ZREM', K_LEASES, cur[2] .. TASK_ID .. SEP .. cur[1])
redis.call('HSET', K_TASK, 'le', ARGV[7])
redis.call('ZADD', K_LEASES, 0, ARGV[7] .. TASK_ID .. SEP .. ARGV[5])
return {'OK', ARGV[5], ARGV[7]}
`)

// releaseScript gives up holder ARGV[5]'s lease: {"OK"}.
var releaseScript = taskScript(`
if redis.call('EXISTS', K_TASK) == 0 then return {'OK'} end
local cur = redis.call('HMGET', K_TASK, 'lh', 'le')
if cur[1] == ARGV[5] then
  redis.call('ZREM', K_LEASES, cur[2] .. TASK_ID .. SEP .. cur[1])
  redis.call('HDEL', K_TASK, 'lh', 'le')
end
return {'OK'}
`)

// trimScript trims the task's stream to its newest ARGV[5] events:
// {"OK"} | {"NOTFOUND"}.
var trimScript = taskScript(`
if redis.call('EXISTS', K_TASK) == 0 then return {'NOTFOUND'} end
redis.call('XTRIM', K_EVENTS, 'MAXLEN', '=', ARGV[5])
return {'OK'}
`)

// createScript creates task KEYS[2] unless the request index KEYS[1] maps
// its key ARGV[2] to a live task: {"CREATED"|"EXISTS", task} | {"IDUSED"}
// | {"QUOTA"}. KEYS[3], KEYS[4] are the list indexes, KEYS[5] the owner's
// live set; ARGV: task key prefix, request key, id, data, updated, cxl,
// cxr, owner, list index entry, head, and the most live tasks the owner
// may have ("0": no limit). Members of the live set that have ended or
// are gone are dropped before a refusal, so the count is exact.
var createScript = redis.NewScript(`
local existing = redis.call('HGET', KEYS[1], ARGV[2])
if existing then
  local f = redis.call('HMGET', ARGV[1] .. existing .. '}', 'data', 'status', 'seq', 'upd', 'cxl', 'cxr')
  if f[1] then
    if existing == ARGV[3] then return {'CREATED', f} end
    return {'EXISTS', f}
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'IDUSED'} end
local maxlive = tonumber(ARGV[11])
if maxlive > 0 and redis.call('SCARD', KEYS[5]) >= maxlive then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
    local st = redis.call('HGET', ARGV[1] .. id .. '}', 'status')
    if st ~= 'ACCEPTED' and st ~= 'RUNNING' then redis.call('SREM', KEYS[5], id) end
  end
  if redis.call('SCARD', KEYS[5]) >= maxlive then return {'QUOTA'} end
end
redis.call('HSET', KEYS[2], 'data', ARGV[4], 'status', 'ACCEPTED', 'seq', '0', 'upd', ARGV[5],
  'cxl', ARGV[6], 'cxr', ARGV[7], 'owner', ARGV[8], 'reqf', ARGV[2], 'ckey', ARGV[9],
  'head', ARGV[10], 'live', KEYS[5])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[9])
redis.call('ZADD', KEYS[4], 0, ARGV[9])
redis.call('SADD', KEYS[5], ARGV[3])
return {'CREATED', redis.call('HMGET', KEYS[2], 'data', 'status', 'seq', 'upd', 'cxl', 'cxr')}
`)

// deleteTerminalScript deletes up to ARGV[4] tasks whose terminal index
// entry is below ARGV[3], with everything they own, and returns how many,
// or with ARGV[5] = "1" the fields data, status, seq, upd, cxl, cxr of
// each (as read just before it was deleted).
// KEYS: terminal, requests, tasks, leases, expiry, resumes and receipts
// indexes; ARGV[1], ARGV[2]: task key and owner index prefixes.
var deleteTerminalScript = redis.NewScript(`
local SEP = '\0'
local function delete_task(id)
  local tk = ARGV[1] .. id .. '}'
  local f = redis.call('HMGET', tk, 'owner', 'reqf', 'ckey', 'lh', 'le', 'live')
  if not f[3] then return false end
  local fields = true
  if ARGV[5] == '1' then fields = redis.call('HMGET', tk, 'data', 'status', 'seq', 'upd', 'cxl', 'cxr') end
  if f[6] then redis.call('SREM', f[6], id) end
  if f[4] then redis.call('ZREM', KEYS[4], f[5] .. id .. SEP .. f[4]) end
  local sk, rk = tk .. ':susp', tk .. ':rcpt'
  local s = redis.call('HGETALL', sk)
  local m = {}
  for j = 1, #s, 2 do m[s[j]] = s[j + 1] end
  for name, v in pairs(m) do
    local kind, sid = string.sub(name, 1, 2), string.sub(name, 3)
    if kind == 'x:' then
      redis.call('ZREM', KEYS[5], v .. id .. SEP .. sid)
    elseif kind == 'm:' and v == 'PENDING' then
      redis.call('ZREM', KEYS[6], (m['c:' .. sid] or '') .. id .. SEP .. sid)
    end
  end
  local r = redis.call('HGETALL', rk)
  for j = 1, #r, 2 do
    if string.sub(r[j], 1, 2) == 't:' then
      redis.call('ZREM', KEYS[7], r[j + 1] .. id .. SEP .. string.sub(r[j], 3))
    end
  end
  if redis.call('HGET', KEYS[2], f[2]) == id then redis.call('HDEL', KEYS[2], f[2]) end
  redis.call('ZREM', KEYS[3], f[3])
  redis.call('ZREM', ARGV[2] .. (f[1] or ''), f[3])
  redis.call('DEL', tk, tk .. ':events', tk .. ':idem', sk, rk)
  return fields
end
local limit = tonumber(ARGV[4])
local n, out = 0, {}
while n < limit do
  local ms = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[3], 'LIMIT', 0, limit - n)
  if #ms == 0 then break end
  for _, mem in ipairs(ms) do
    redis.call('ZREM', KEYS[1], mem)
    local f = delete_task(string.sub(mem, 25))
    if f then
      n = n + 1
      out[n] = f
    end
  end
end
if ARGV[5] == '1' then return out end
return n
`)

// splitMember is shared by the scripts below: it splits an index entry
// "time id NUL rest" into id and rest.
const splitMember = `
local SEP = '\0'
local function split_member(mem)
  local rest = string.sub(mem, 25)
  local p = string.find(rest, SEP, 1, true)
  if not p then return false end
  return string.sub(rest, 1, p - 1), string.sub(rest, p + 1)
end
local function susp_at(sk, sid)
  return redis.call('HMGET', sk, 'd:' .. sid, 's:' .. sid, 'q:' .. sid, 'r:' .. sid, 'm:' .. sid, 'c:' .. sid)
end
`

// expireScript moves up to ARGV[3] OPEN suspensions of the expiry index
// KEYS[1] below ARGV[2] to EXPIRED at ARGV[4]: {{task id, suspension},
// ...}. ARGV[1] is the task key prefix.
var expireScript = redis.NewScript(splitMember + `
local limit = tonumber(ARGV[3])
local out = {}
while #out < limit do
  local ms = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[2], 'LIMIT', 0, limit - #out)
  if #ms == 0 then break end
  for _, mem in ipairs(ms) do
    redis.call('ZREM', KEYS[1], mem)
    local id, sid = split_member(mem)
    if id then
      local sk = ARGV[1] .. id .. '}:susp'
      if redis.call('HGET', sk, 's:' .. sid) == 'OPEN' then
        redis.call('HSET', sk, 's:' .. sid, 'EXPIRED', 'c:' .. sid, ARGV[4])
        out[#out + 1] = {id, susp_at(sk, sid)}
      end
    end
  end
end
return out
`)

// pendingScript lists up to ARGV[2] suspensions of the resumes index
// KEYS[1] whose resume is PENDING: {{task id, suspension}, ...}, dropping
// stale entries. ARGV[1] is the task key prefix.
var pendingScript = redis.NewScript(splitMember + `
local limit = tonumber(ARGV[2])
local out, stale, off = {}, {}, 0
while #out < limit do
  local ms = redis.call('ZRANGEBYLEX', KEYS[1], '-', '+', 'LIMIT', off, 100)
  if #ms == 0 then break end
  off = off + #ms
  for _, mem in ipairs(ms) do
    local id, sid = split_member(mem)
    local f = id and susp_at(ARGV[1] .. id .. '}:susp', sid)
    if f and f[2] == 'RESOLVED' and f[5] == 'PENDING' then
      if #out < limit then out[#out + 1] = {id, f} end
    else
      stale[#stale + 1] = mem
    end
  end
end
for _, mem in ipairs(stale) do redis.call('ZREM', KEYS[1], mem) end
return out
`)

// deleteReceiptsScript deletes up to ARGV[3] receipts of the receipts
// index KEYS[1] below ARGV[2] whose resume is not PENDING and returns how
// many. ARGV[1] is the task key prefix.
var deleteReceiptsScript = redis.NewScript(splitMember + `
local limit = tonumber(ARGV[3])
local n, off = 0, 0
while n < limit do
  local ms = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[2], 'LIMIT', off, 100)
  if #ms == 0 then break end
  for _, mem in ipairs(ms) do
    if n == limit then break end
    local id, caid = split_member(mem)
    local tk = id and (ARGV[1] .. id .. '}') or ''
    local sid = id and redis.call('HGET', tk .. ':rcpt', 's:' .. caid)
    if sid and redis.call('HGET', tk .. ':susp', 'm:' .. sid) == 'PENDING' then
      off = off + 1
    else
      redis.call('ZREM', KEYS[1], mem)
      if sid then
        redis.call('HDEL', tk .. ':rcpt', 'j:' .. caid, 'f:' .. caid, 'q:' .. caid, 's:' .. caid, 't:' .. caid)
        n = n + 1
      end
    end
  end
end
return n
`)

// The reads below are one command each, like the writes: one round trip
// on the client's main pool.

// fieldsScript returns the fields ARGV of hash KEYS[2] (all of it when
// ARGV is empty, as a flat list), or nil when task KEYS[1] does not exist.
var fieldsScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if #ARGV == 0 then return redis.call('HGETALL', KEYS[2]) end
return redis.call('HMGET', KEYS[2], unpack(ARGV))
`)

// listScript reads up to ARGV[3] entries of the list index KEYS[1] below
// ARGV[2], newest first, with the fields of each task (ARGV[1] is the task
// key prefix): {{entry, {data, status, seq, upd, cxl, cxr}}, ...}.
var listScript = redis.NewScript(`
local ms = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[2], '-', 'LIMIT', 0, ARGV[3])
local out = {}
for i, m in ipairs(ms) do
  out[i] = {m, redis.call('HMGET', ARGV[1] .. string.sub(m, 25) .. '}', 'data', 'status', 'seq', 'upd', 'cxl', 'cxr')}
end
return out
`)
