-- Check a batch of records against the duplicate index and add them, atomically (see index.py).
-- ARGV: key prefix, num_perm, min_matches, horizon_days, chunk_bits, slot_size, exact_buckets,
--       band_buckets, capacity, then one packed entry per record:
--   <c16 id key><H day><B flags><I4 exact bucket><c8 exact field><B bands><H sig length>
--   then per band <I4 bucket><c4 field>, then the signature, then (flags & 1) <H length><id>
-- Returns three values per record: status (1 unique, 2 exact, 3 near), the duplicate's id
-- reference ("h" .. 16 raw bytes, "c" .. verbatim id, or "" for none), and the matching count.
local ns = ARGV[1]
local num_perm = tonumber(ARGV[2])
local min_matches = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local chunk_bits = tonumber(ARGV[5])
local slot_size = tonumber(ARGV[6])
local exact_buckets = tonumber(ARGV[7])
local band_buckets = tonumber(ARGV[8])
local capacity = tonumber(ARGV[9])
local chunk_slots = 2 ^ chunk_bits
local meta = ns .. ':meta'
local EXACT_ENTRY, EXACT_FIELD = 12, 8
local BAND_ENTRY, BAND_FIELD = 8, 4

local max_day = tonumber(redis.call('HGET', meta, 'max_day') or '0')
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')

-- Buckets are strings of fixed-size entries (field, then a uint32 sequence number). They are read
-- once per batch and written back once at its end, with SET (exact size: APPEND would leave slack).
local buckets, dirty = {}, {}
local function bucket(key)
  local s = buckets[key]
  if s == nil then
    s = redis.call('GET', key) or ''
    buckets[key] = s
  end
  return s
end

local function find(key, field, entry_size)
  -- offset (0-based) of the entry whose field is ``field``, and its sequence number
  local s = bucket(key)
  local init = 1
  while true do
    local pos = string.find(s, field, init, true)
    if not pos then return nil end
    if (pos - 1) % entry_size == 0 then
      return pos - 1, struct.unpack('<I4', s, pos + #field)
    end
    init = pos + 1
  end
end

local function put(key, offset, field, value)
  -- set the entry at ``offset`` (or append when nil)
  local s = bucket(key)
  local entry = field .. struct.pack('<I4', value)
  if offset then
    s = string.sub(s, 1, offset) .. entry .. string.sub(s, offset + #entry + 1)
  else
    s = s .. entry
  end
  buckets[key] = s
  dirty[key] = true
end

local function chunk_of(s) return math.floor(s / chunk_slots) end
local function offset_of(s) return (s % chunk_slots) * slot_size end

-- slot fields: id 16, day 2, flags 1, duplicate-of sequence 4, matches 2, signature
local function read_slot(s)
  if not s then return nil end
  local raw = redis.call('GETRANGE', ns .. ':r:' .. chunk_of(s), offset_of(s), offset_of(s) + slot_size - 1)
  if #raw < slot_size then return nil end
  local id, day, flags, dup, m = struct.unpack('<c16HBI4H', raw)
  if flags == 0 then return nil end -- never written (chunk padding)
  return {id = id, day = day, flags = flags, dup = dup, matches = m, sig = string.sub(raw, 26), seq = s}
end

local function live(slot)
  if not slot then return nil end
  if horizon > 0 and slot.day < max_day - horizon then return nil end
  return slot
end

local function ref_of(slot)
  if not slot then return '' end
  if bit.band(slot.flags, 128) ~= 0 then
    local id = redis.call('HGET', ns .. ':i:' .. chunk_of(slot.seq), slot.seq)
    if not id then return '' end
    return 'c' .. id
  end
  return 'h' .. slot.id
end

-- signatures hold four 2-bit values per byte; same_in[x] = values that agree in a byte whose XOR is x
local same_in = {}
for x = 0, 255 do
  local n = 0
  for shift = 0, 6, 2 do
    if bit.band(bit.rshift(x, shift), 3) == 0 then n = n + 1 end
  end
  same_in[x] = n
end

local function count_matches(a, b)
  if #a ~= #b or #a == 0 then return 0 end
  local same = 0
  for i = 1, #a do
    same = same + same_in[bit.bxor(string.byte(a, i), string.byte(b, i))]
  end
  return same
end

local results = {}
for i = 10, #ARGV do
  local packed = ARGV[i]
  local id, day, flags, e_bucket, e_field, nbands, siglen, pos = struct.unpack('<c16HBI4c8BH', packed)
  local bands = {}
  for b = 1, nbands do
    local b_bucket, b_field
    b_bucket, b_field, pos = struct.unpack('<I4c4', packed, pos)
    bands[b] = {key = ns .. ':b:' .. b_bucket, field = b_field}
  end
  local sig = string.sub(packed, pos, pos + siglen - 1)
  pos = pos + siglen
  local custom_id = nil
  if bit.band(flags, 1) ~= 0 then
    local n
    n, pos = struct.unpack('<H', packed, pos)
    custom_id = string.sub(packed, pos, pos + n - 1)
  end
  if day > max_day then max_day = day end

  local e_key = ns .. ':e:' .. e_bucket
  local e_offset, e_seq = find(e_key, e_field, EXACT_ENTRY)
  local first = live(read_slot(e_seq))
  if first and first.id == id then
    -- a redelivery: its stored verdict
    local status = bit.band(first.flags, 3)
    local dup_ref = ''
    if first.dup > 0 then dup_ref = ref_of(read_slot(first.dup)) end
    table.insert(results, status); table.insert(results, dup_ref); table.insert(results, first.matches)
  elseif first then
    table.insert(results, 2); table.insert(results, ref_of(first)); table.insert(results, num_perm)
  else
    seq = seq + 1
    local best, best_m = nil, -1
    local seen = {}
    local owners = {}
    for b = 1, nbands do
      local b_offset, cand_seq = find(bands[b].key, bands[b].field, BAND_ENTRY)
      local cand = false
      if cand_seq then
        cand = seen[cand_seq]
        if cand == nil then
          cand = live(read_slot(cand_seq)) or false
          seen[cand_seq] = cand
          if cand then
            local m = count_matches(sig, cand.sig)
            if m > best_m or (m == best_m and cand_seq < best.seq) then best, best_m = cand, m end
          end
        end
      end
      owners[b] = {live = cand, offset = b_offset}
    end
    local status, dup_seq, dup_m, dup_ref = 1, 0, 0, ''
    if best and best_m >= min_matches then
      status, dup_seq, dup_m, dup_ref = 3, best.seq, best_m, ref_of(best)
    end
    -- the slot: flags bit 7 = custom id, bits 0-1 = status
    local slot_flags = status
    if custom_id then slot_flags = slot_flags + 128 end
    local chunk = chunk_of(seq)
    local chunk_key = ns .. ':r:' .. chunk
    if redis.call('EXISTS', chunk_key) == 0 then
      -- allocate the chunk at its full size at once (no growth slack)
      redis.call('SETRANGE', chunk_key, chunk_slots * slot_size - 1, '\0')
    end
    local slot = struct.pack('<c16HBI4H', id, day, slot_flags, dup_seq, dup_m) .. sig
    if #sig < slot_size - 25 then slot = slot .. string.rep('\0', slot_size - 25 - #sig) end
    redis.call('SETRANGE', chunk_key, offset_of(seq), slot)
    if custom_id then redis.call('HSET', ns .. ':i:' .. chunk, seq, custom_id) end
    local chunk_day = tonumber(redis.call('HGET', ns .. ':cd', chunk) or '-1')
    if day > chunk_day then redis.call('HSET', ns .. ':cd', chunk, day) end
    put(e_key, e_offset, e_field, seq)
    for b = 1, nbands do
      -- a band value keeps its first live record; an expired owner is replaced in place
      if not owners[b].live then put(bands[b].key, owners[b].offset, bands[b].field, seq) end
    end
    table.insert(results, status); table.insert(results, dup_ref); table.insert(results, dup_m)
  end
end

redis.call('HSET', meta, 'seq', seq, 'max_day', max_day)

-- Expiry: drop whole chunks past the horizon, then sweep a few buckets of entries that point
-- into dropped chunks, so memory stays bounded by the records within the horizon.
if horizon > 0 then
  local min_chunk = tonumber(redis.call('HGET', meta, 'min_chunk') or '0')
  local last_chunk = chunk_of(seq)
  while min_chunk < last_chunk do
    local newest = tonumber(redis.call('HGET', ns .. ':cd', min_chunk) or '-1')
    if newest >= max_day - horizon then break end
    redis.call('DEL', ns .. ':r:' .. min_chunk, ns .. ':i:' .. min_chunk)
    redis.call('HDEL', ns .. ':cd', min_chunk)
    min_chunk = min_chunk + 1
  end
  redis.call('HSET', meta, 'min_chunk', min_chunk)
  if min_chunk > 0 then
    local first_live = min_chunk * chunk_slots
    local total = exact_buckets + band_buckets
    local per_batch = math.ceil(total * (#ARGV - 9) / capacity)
    local cursor = tonumber(redis.call('HGET', meta, 'sweep') or '0')
    for _ = 1, per_batch do
      local key, size
      if cursor < exact_buckets then
        key, size = ns .. ':e:' .. cursor, EXACT_ENTRY
      else
        key, size = ns .. ':b:' .. (cursor - exact_buckets), BAND_ENTRY
      end
      local s = bucket(key)
      local kept = {}
      for off = 1, #s, size do
        if struct.unpack('<I4', s, off + size - 4) >= first_live then
          table.insert(kept, string.sub(s, off, off + size - 1))
        end
      end
      local new = table.concat(kept)
      if #new ~= #s then buckets[key] = new; dirty[key] = true end
      cursor = (cursor + 1) % total
    end
    redis.call('HSET', meta, 'sweep', cursor)
  end
end

for key in pairs(dirty) do
  local s = buckets[key]
  if #s > 0 then redis.call('SET', key, s) else redis.call('DEL', key) end
end
return results
