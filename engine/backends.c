/* backends.c: the back-end table. Each entry is one device kind (core/backend.h): the CPU
 * (engine/cpu/) and OpenCL (engine/cl/). A new back end (Vulkan, Level Zero, HIP) is a folder
 * with its table and one line here (docs/backends.md). */
#include "core/backend.h"

extern const craft_backend craft_cpu_backend, craft_cl_backend;

const craft_backend *const craft_backends[] = {&craft_cpu_backend, &craft_cl_backend};
const int craft_backend_count = (int)(sizeof craft_backends / sizeof craft_backends[0]);
