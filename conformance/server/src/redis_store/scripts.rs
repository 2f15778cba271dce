//! The Lua scripts of the Redis store: each operation is one script, so it is atomic and costs one round trip.
//!
//! Keys (`P` = the configured prefix): `P:epoch` (the store epoch, 16 hex digits),
//! `P:seq:CH` (the channel's last seq, `INCR`), `P:ring:CH` (a stream of the last
//! `ring_capacity` messages, entry id `0-SEQ`, field `d` = the JSON payload), `P:channels`
//! (the set of channel names, for the channel limit), `P:id:ID` (a publish id: `"SEQ CH"`,
//! expiring after the dedupe TTL) and `P:ids` (the publish ids in arrival order, for the
//! dedupe count bound). Appends are announced on the pub/sub channel `P:notify` as
//! `CH \n SEQ \n JSON`.

/// Append (with an optional publish id).
///
/// KEYS: epoch, seq, ring, channels, id, ids. ARGV: channel, data, ring capacity, max
/// channels, epoch candidate, dedupe TTL (s), dedupe capacity, notify channel, `1` when an id
/// is given. Returns `{status, value, epoch}`: status 0 = appended (value = seq), 1 = the id
/// was seen (value = `"SEQ CH"`), 2 = the channel limit is reached.
pub(crate) const APPEND: &str = r#"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[5])
  epoch = ARGV[5]
end
if ARGV[9] == '1' then
  local prev = redis.call('GET', KEYS[5])
  if prev then return {1, prev, epoch} end
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0 then
    if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[4]) then return {2, '', epoch} end
    redis.call('SADD', KEYS[4], ARGV[1])
  end
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[3], '0-' .. seq, 'd', ARGV[2])
if ARGV[9] == '1' then
  redis.call('SET', KEYS[5], seq .. ' ' .. ARGV[1], 'EX', ARGV[6])
  local n = redis.call('RPUSH', KEYS[6], KEYS[5])
  local cap = tonumber(ARGV[7])
  while n > cap do
    local old = redis.call('LPOP', KEYS[6])
    if old then redis.call('DEL', old) end
    n = n - 1
  end
end
redis.call('PUBLISH', ARGV[8], ARGV[1] .. '\n' .. seq .. '\n' .. ARGV[2])
return {0, tostring(seq), epoch}
"#;

/// Read after a position.
///
/// KEYS: epoch, seq, ring. ARGV: after, max, epoch candidate. Returns
/// `{gone, head, epoch, id1, data1, id2, data2, ...}`: gone = 1 when the ring no longer holds
/// `after + 1` or `after` is beyond the head (RESUME-4).
pub(crate) const READ: &str = r#"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[3])
  epoch = ARGV[3]
end
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
local after = tonumber(ARGV[1])
if after > head then return {1, head, epoch} end
if after == head then return {0, head, epoch} end
local r = redis.call('XRANGE', KEYS[3], '(0-' .. ARGV[1], '+', 'COUNT', ARGV[2])
if #r == 0 then return {1, head, epoch} end
if tonumber(string.sub(r[1][1], 3)) ~= after + 1 then return {1, head, epoch} end
local out = {0, head, epoch}
for _, e in ipairs(r) do
  out[#out + 1] = e[1]
  out[#out + 1] = e[2][2]
end
return out
"#;

/// The head of a channel and the epoch.
///
/// KEYS: epoch, seq. ARGV: epoch candidate. Returns `{head, epoch}`.
pub(crate) const HEAD: &str = r#"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
return {tonumber(redis.call('GET', KEYS[2]) or '0'), epoch}
"#;
