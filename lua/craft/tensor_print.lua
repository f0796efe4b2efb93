-- craft.tensor_print: tostring(tensor), as torch prints: values right-aligned to a common width,
-- nested brackets per dim, tensors over 1000 elements summarised to three values at each end of a
-- dim, then shape, dtype, device (when not the CPU) and grad_fn or requires_grad.
local function fmt_num(v, is_int)
  if is_int then return string.format('%d', v) end
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  return string.format('%.4f', v)
end

return function(self)
  local shape = self.shape
  local n = self:numel()
  local dt = self.dtype
  local is_int = dt == 'i64' or dt == 'i32' or dt == 'u8' or dt == 'i8' or dt == 'bool'
  local body
  local summarise = n > 1000
  if n == 0 then
    body = '[]'
  elseif #shape == 0 then
    body = fmt_num(self:item(), is_int)
  else
    local flat = self:flat()
    local width = 0
    for i = 1, n do local s = fmt_num(flat[i], is_int); if #s > width then width = #s end end
    local strides = {}
    local st = 1
    for d = #shape, 1, -1 do strides[d] = st; st = st * shape[d] end
    local function build(d, base, indent)
      local parts = {}
      local len = shape[d]
      local idxs = {}
      if summarise and len > 6 then idxs = { 1, 2, 3, false, len - 2, len - 1, len }
      else for i = 1, len do idxs[i] = i end end
      for _, i in ipairs(idxs) do
        if not i then parts[#parts + 1] = '...'
        elseif d == #shape then
          local s = fmt_num(flat[base + (i - 1) * strides[d] + 1], is_int)
          parts[#parts + 1] = string.rep(' ', width - #s) .. s
        else
          parts[#parts + 1] = build(d + 1, base + (i - 1) * strides[d], indent .. ' ')
        end
      end
      if d == #shape then return '[' .. table.concat(parts, ', ') .. ']' end
      return '[' .. table.concat(parts, ',\n' .. string.rep('\n', #shape - d - 1) .. indent .. ' ') .. ']'
    end
    body = build(1, 0, '       ')
  end
  local extra = { 'shape=[' .. table.concat(shape, ', ') .. ']', 'dtype=' .. dt }
  if self.device ~= 'cpu' then extra[#extra + 1] = 'device=' .. self.device end
  local gf = self.grad_fn
  if gf then extra[#extra + 1] = 'grad_fn=' .. gf
  elseif self.requires_grad then extra[#extra + 1] = 'requires_grad=true' end
  return 'tensor(' .. body .. ', ' .. table.concat(extra, ', ') .. ')'
end
