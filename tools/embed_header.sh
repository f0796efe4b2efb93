#!/bin/sh
# Turn the public header into a C string literal for LuaJIT's ffi.cdef:
# drop preprocessor lines and comments-only lines; escape quotes and backslashes.
sed -e '/CRAFT_CDEF_SKIP/d' -e '/^[[:space:]]*#/d' -e 's|//.*$||' "$1" | awk '
  BEGIN { incomment = 0 }
  {
    line = $0
    out = ""
    while (length(line) > 0) {
      if (incomment) {
        i = index(line, "*/")
        if (i == 0) { line = ""; break }
        line = substr(line, i + 2); incomment = 0
      } else {
        i = index(line, "/*")
        if (i == 0) { out = out line; line = ""; break }
        out = out substr(line, 1, i - 1); line = substr(line, i + 2); incomment = 1
      }
    }
    if (out ~ /[^[:space:]]/) {
      gsub(/\\/, "\\\\", out); gsub(/"/, "\\\"", out)
      print "\"" out "\\n\""
    }
  }'
