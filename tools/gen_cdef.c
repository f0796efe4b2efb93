/* The public header as text, for the Lua binding's ffi.cdef (generated at build time). */
#include "craft.h"
static const char craft_cdef_src[] =
#include "cdef.inc"
    ;
const char *craft_cdef_text(void) { return craft_cdef_src; }
