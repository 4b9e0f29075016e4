-- Check one record against the duplicate index and add it, atomically (see index.py).
-- ARGV: namespace, record id, exact hash, threshold, packed signature (uint32 LE), band keys...
local ns, id, exact, threshold, sig = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local verdicts = ns .. ':verdict'

local known = redis.call('HGET', verdicts, id)
if known then
  return known
end

local function verdict(status, dup, sim)
  local v = {status = status, duplicate_of = dup or cjson.null, similarity = sim or cjson.null}
  local encoded = cjson.encode(v)
  redis.call('HSET', verdicts, id, encoded)
  return encoded
end

local first = redis.call('HGET', ns .. ':exact', exact)
if first and first ~= id then
  return verdict('exact_duplicate', first, 1.0)
end
redis.call('HSET', ns .. ':exact', exact, id)

local function similarity(a, b)
  if #a ~= #b or #a == 0 then
    return 0
  end
  local same = 0
  for i = 1, #a, 4 do
    if string.sub(a, i, i + 3) == string.sub(b, i, i + 3) then
      same = same + 1
    end
  end
  return same / (#a / 4)
end

local best_id, best_sim, best_seq = nil, -1, 0
local seen = {}
for i = 6, #ARGV do
  local members = redis.call('LRANGE', ns .. ':band:' .. ARGV[i], 0, -1)
  for _, cand in ipairs(members) do
    if not seen[cand] then
      seen[cand] = true
      local other = redis.call('HGET', ns .. ':sig', cand)
      local seq = tonumber(redis.call('HGET', ns .. ':seq', cand))
      local sim = similarity(sig, other or '')
      if sim > best_sim or (sim == best_sim and seq < best_seq) then
        best_id, best_sim, best_seq = cand, sim, seq
      end
    end
  end
end

local result
if best_id and best_sim >= threshold then
  result = verdict('near_duplicate', best_id, math.floor(best_sim * 10000 + 0.5) / 10000)
else
  result = verdict('unique', nil, nil)
end

if #sig > 0 then
  redis.call('HSET', ns .. ':seq', id, redis.call('INCR', ns .. ':counter'))
  redis.call('HSET', ns .. ':sig', id, sig)
  for i = 6, #ARGV do
    redis.call('RPUSH', ns .. ':band:' .. ARGV[i], id)
  end
end
return result
