-- craft tests/study/drive_page.lua STUDY_HTML KEY_JSON READER OUT_HTML [STOP_AFTER]
-- Writes OUT_HTML: the packet's page with a plan for READER and tests/study/driver.js added, so
-- that `chromium --dump-dom` completes the study. The plans (tests/study/check_scores.lua
-- derives the expected results from them by hand): the conditions are the key's M1..M4 (the
-- first four methods) and R (the real image); the special class is the key's last class.
--   "Dr A": every trial R > M4 > M3 > M2 > M1; ticks item 0 on R and M4.
--   "Dr B": R > M3 > M4 > M2 > M1 in the special class, flagging M1 "not diagnostic";
--           M4 > R > M3 > M1 > M2 in the others; ticks every item on R.
--   anyone else: the key's condition order, no ticks.
local io_ = require 'craft.io'
local html_path, key_path, reader, out_path, stop = arg[1], arg[2], arg[3], arg[4], tonumber(arg[5])
local key = io_.read_json(key_path)
local cond = {}
for i, c in ipairs(key.conditions) do cond[c.key] = i end
local M = {}
for i = 1, 4 do M[i] = key.conditions[i] and key.conditions[i].key end
local special = #key.classes - 1
local plan = { rater = reader, stop_after = stop, trials = {} }
for _, t in ipairs(key.trials) do
  local id_of = {}
  for _, im in ipairs(t.images) do id_of[im.method_key] = im.id end
  local order
  if reader == 'Dr A' then order = { 'real', M[4], M[3], M[2], M[1] }
  elseif reader == 'Dr B' then
    order = t.class_index == special and { 'real', M[3], M[4], M[2], M[1] } or { M[4], 'real', M[3], M[1], M[2] }
  else
    order = {}
    for i, c in ipairs(key.conditions) do order[i] = c.key end
  end
  local ranking, ticks, flags = {}, {}, io_.array()
  for i, k in ipairs(order) do ranking[i] = assert(id_of[k], 'no image of ' .. tostring(k) .. ' in ' .. t.id) end
  local n_items = #(key.checklists[t.class_index + 1] or {})
  if reader == 'Dr A' and n_items > 0 then
    ticks[id_of.real] = { 0 }
    ticks[id_of[M[4]]] = { 0 }
  elseif reader == 'Dr B' then
    local all = {}
    for k = 1, n_items do all[k] = k - 1 end
    if n_items > 0 then ticks[id_of.real] = all end
    if t.class_index == special then flags[1] = id_of[M[1]] end
  end
  plan.trials[t.id] = { ranking = ranking, ticks = ticks, flags = flags }
end
local f = assert(io.open(html_path, 'rb'))
local html = f:read('*a')
f:close()
local driver = assert(io.open('tests/study/driver.js')):read('*a')
local inject = '<script>window.__PLAN = ' .. io_.encode_json(plan):gsub('<', '\\u003c') .. ';</script>\n<script>' .. driver .. '</script>\n</body>'
local i = html:find('</body>', 1, true)
local o = assert(io.open(out_path, 'wb'))
o:write(html:sub(1, i - 1), inject, html:sub(i + 7))
o:close()
